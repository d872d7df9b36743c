package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/farmhttp"
	"github.com/afterlife-oss/afterlife/builder/witness"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/translog"
)

// wireTranslog builds the transparency log on the parts' event logs: each
// part's append-only log is a translog.Source, translated here.
func (s *system) wireTranslog(ctx context.Context, root, v1 *httpapi.Router, p *parts) error {
	outside, err := s.cfg.OutsideWitnesses()
	if err != nil {
		return err
	}
	var ws []translog.Outside
	for _, w := range outside {
		ws = append(ws, translog.Outside{URL: w.URL, VerifierKey: w.VerifierKey, Operator: w.Operator})
	}
	l, err := translog.Open(ctx, translog.Options{
		DB: s.db, KeyDir: s.cfg.Keys, Origin: logOrigin(s.cfg.PublicURL), Now: s.now,
		Quorum: s.cfg.TranslogQuorum, Outside: ws,
		Logger: s.log.With("part", "translog"), Replica: s.cfg.ReplicaID,
		Sources: map[string]translog.Source{
			catalogSourceName:  catalogSource{p.catalog},
			escrowSourceName:   escrowSource{p.escrow},
			registrySourceName: registrySource{p.reg},
			farmSourceName:     farmSource{p.coord},
		},
	})
	if err != nil {
		return err
	}
	l.Register(root, v1)
	farmhttp.RegisterWitness(v1, logWitnessing{l})
	p.translog = l
	s.background = append(s.background, func(ctx context.Context) {
		logStop(s, "transparency log", l.Run(ctx, s.cfg.TranslogEvery))
	})
	if s.cfg.TranslogInRoot {
		s.background = append(s.background, func(ctx context.Context) { s.publishLogPolicy(ctx, l, p.reg) })
	}
	return s.startLocalWitnesses(ctx, l)
}

// publishLogPolicy keeps the log's policy (its key, the witnesses and the
// quorum) in the signed TUF root: whenever it changes (a witness cosigns
// for the first time), a new root version carries it to devices.
func (s *system) publishLogPolicy(ctx context.Context, l *translog.Log, reg *registry.Service) {
	t := time.NewTicker(max(s.cfg.TranslogEvery, time.Second))
	defer t.Stop()
	var published, failed string
	for {
		pol, err := l.Policy(ctx)
		operators := map[string]bool{}
		for _, w := range pol.Witnesses {
			operators[w.Operator] = true
		}
		// A policy no checkpoint can meet yet would make devices refuse
		// everything: it waits until enough witnesses have cosigned.
		if err == nil && len(operators) >= pol.Quorum {
			b, _ := json.Marshal(pol)
			if string(b) != published {
				held, changed, err := reg.PublishLogPolicy(ctx, pol)
				switch {
				case !held && err == nil:
					// Another replica signs now; the next tick tries again.
				case err != nil && string(b) != failed && ctx.Err() == nil:
					s.log.Warn("the transparency log's policy is not in the TUF root yet; devices do not check the log until it is", "err", err)
					failed = string(b)
				case err == nil:
					published = string(b)
					if changed {
						s.log.Info("published the transparency log's policy in the TUF root", "witnesses", len(pol.Witnesses), "quorum", pol.Quorum)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logOrigin names a new log after the server's public URL, without its
// scheme (C2SP tlog-checkpoint origins are schemeless URLs).
func logOrigin(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "afterlife.invalid/log"
	}
	return u.Host + strings.TrimRight(u.Path, "/") + translog.Prefix
}

// The names of the log's sources.
const (
	catalogSourceName  = "catalog"
	escrowSourceName   = "escrow"
	registrySourceName = "registry"
	farmSourceName     = "farm"
)

// productLogEntries finds the entries of a product page's timeline; the
// log is wired after the pages, so it is looked up when a page asks.
type productLogEntries struct{ p *parts }

func (e productLogEntries) ProductEntries(ctx context.Context, statusSeqs, registrySeqs []int64) (map[int64]int64, map[int64]int64, error) {
	l := e.p.translog
	if l == nil {
		return nil, nil, nil
	}
	status, err := l.EntryIndexes(ctx, catalogSourceName, statusSeqs)
	if err != nil {
		return nil, nil, err
	}
	reg, err := l.EntryIndexes(ctx, registrySourceName, registrySeqs)
	return status, reg, err
}

func (e productLogEntries) DepositReleases(ctx context.Context, deposits []string) (map[string]int64, error) {
	if e.p.translog == nil {
		return nil, nil
	}
	return e.p.translog.OpenedBy(ctx, deposits)
}

// catalogSource is the catalog's log of product status changes.
type catalogSource struct{ c *catalog.Catalog }

func (s catalogSource) After(ctx context.Context, seq int64, limit int) ([]translog.Event, error) {
	evs, err := s.c.EventsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]translog.Event, len(evs))
	for i, e := range evs {
		ev := translog.Event{Seq: e.Seq, At: e.At, Subject: e.Product,
			Fields: map[string]any{"product": e.Product, "actor": e.Actor, "status": string(e.To)}}
		if e.From == "" {
			ev.Type = "product.registered"
			ev.Fields["vendor"], ev.Fields["model"], ev.Fields["device_ids"] = e.Vendor, e.Model, e.DeviceIDs
		} else {
			ev.Type = "product.status"
			ev.Fields["from"] = string(e.From)
		}
		out[i] = ev
	}
	return out, nil
}

// escrowSource is escrow's log of deposits. A sealed deposit is logged as
// a commitment only; its release opens it. Events that would show a
// sealed deposit exists (created, approved, aborted) are passed over.
type escrowSource struct{ e *escrow.Service }

func (s escrowSource) After(ctx context.Context, seq int64, limit int) ([]translog.Event, error) {
	evs, err := s.e.EventsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]translog.Event, len(evs))
	for i, e := range evs {
		ev := translog.Event{Seq: e.Seq, At: e.At}
		switch e.Kind {
		case "sealed":
			ev.Type, ev.Subject = "deposit.sealed", e.Deposit
			ev.Seal = &translog.Commitment{Product: e.Product, Manifest: e.Manifest}
		case "released":
			ev.Type, ev.Subject, ev.Opens = "deposit.released", e.Product, e.Deposit
			approvals := make([]map[string]any, 0, len(e.Approvals))
			for _, a := range e.Approvals {
				approvals = append(approvals, map[string]any{"trustee": a.Trustee, "at": a.At.UTC().Format(timeFormat)})
			}
			evidence := map[string]any{"approvals": approvals, "released_by": e.Actor}
			if !e.SealedAt.IsZero() {
				evidence["sealed_at"] = e.SealedAt.UTC().Format(timeFormat)
			}
			if !e.LastCheckin.IsZero() {
				evidence["last_checkin"] = e.LastCheckin.UTC().Format(timeFormat)
			}
			ev.Fields = map[string]any{"deposit": e.Deposit, "product": e.Product, "manifest": e.Manifest,
				"policy": e.Policy, "fired": e.Event.Policy, "evidence": evidence}
		}
		out[i] = ev
	}
	return out, nil
}

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// farmSource is the farm's log of decided builds: each verdict with the
// builders, their operators, their attestations and the cold witness.
type farmSource struct{ c *coord.Service }

func (s farmSource) After(ctx context.Context, seq int64, limit int) ([]translog.Event, error) {
	vs, err := s.c.VerdictsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]translog.Event, len(vs))
	for i, v := range vs {
		b := v.Build
		results := make([]map[string]any, 0, len(b.Results))
		for _, r := range b.Results {
			results = append(results, map[string]any{"job": r.JobID, "builder": r.BuilderID, "operator": r.Operator,
				"attestation": string(r.Attestation), "cold": r.Cold, "failed": r.Failed})
		}
		subject := b.ID
		if len(b.Products) == 1 {
			subject = b.Products[0]
		}
		out[i] = translog.Event{Seq: v.Seq, At: v.At, Type: "build.verdict", Subject: subject, Fields: map[string]any{
			"build": b.ID, "repo": b.Repo, "commit": b.Commit, "path": b.Path, "recipe": b.Name, "version": b.Version,
			"products": b.Products, "state": string(b.State), "reason": b.Verdict.Reason, "agreeing": b.Verdict.Agreeing,
			"quorum": b.Quorum, "outputs": b.Verdict.Outputs, "cold_job": b.Verdict.ColdJob, "results": results,
		}}
	}
	return out, nil
}

// registrySource is the registry's log of releases.
type registrySource struct{ r *registry.Service }

func (s registrySource) After(ctx context.Context, seq int64, limit int) ([]translog.Event, error) {
	evs, err := s.r.EventsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]translog.Event, len(evs))
	for i, e := range evs {
		ev := translog.Event{Seq: e.Seq, At: e.At, Subject: e.Product,
			Fields: map[string]any{"product": e.Product, "actor": e.Actor, "detail": e.Detail}}
		ev.Type = "product." + e.Kind
		if e.Kind == "key_rotated" {
			ev.Type, ev.Subject = "key.rotated", ""
			ev.Fields = map[string]any{"role": e.Detail, "actor": e.Actor}
		}
		if e.Kind == "root_published" {
			ev.Type, ev.Subject = "key.root_published", ""
			ev.Fields = map[string]any{"root_version": e.Detail, "actor": e.Actor}
		}
		if e.Event.Release != "" {
			ev.Type = "release." + e.Kind
			ev.Fields["release"] = e.Event.Release
		}
		if r := e.Release; r != nil {
			ev.Fields["version"], ev.Fields["channel"] = r.Version, r.Channel
			if e.Kind == "published" {
				arts := make([]map[string]any, 0, len(r.Artifacts))
				for _, a := range r.Artifacts {
					arts = append(arts, map[string]any{"target": a.Target, "digest": a.Digest, "size": a.Size})
				}
				ev.Fields["artifacts"] = arts
				ev.Fields["build"], ev.Fields["recipe"], ev.Fields["recipe_version"] = r.BuildID, r.Recipe, r.RecipeVersion
				ev.Fields["verdict"] = map[string]any{"agreeing": r.Agreeing, "total": r.Total, "url": r.VerdictURL, "attestations": r.AttestationsURL}
				ev.Fields["community"] = r.Community
			}
		}
		out[i] = ev
	}
	return out, nil
}

// logWitnessing is the log as the farm's witness routes use it.
type logWitnessing struct{ l *translog.Log }

func (w logWitnessing) WitnessJob(ctx context.Context, old int64) (builder.WitnessJob, error) {
	j, err := w.l.WitnessJob(ctx, old)
	if err != nil {
		return builder.WitnessJob{}, err
	}
	out := builder.WitnessJob{LogKey: j.LogKey, Checkpoint: string(j.Checkpoint), Old: j.Old, Proof: []string{}}
	for _, h := range j.Proof {
		out.Proof = append(out.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out, nil
}

func (w logWitnessing) Cosign(ctx context.Context, operator string, c builder.Cosignature) error {
	return w.l.AddCosignature(ctx, translog.BuilderWitness, operator, c.VerifierKey, c.Size, c.Signature)
}

// localWitness is the log as an in-process builder witnesses it, acting
// for the operator its token is bound to.
type localWitness struct {
	logWitnessing
	operator string
}

func (w localWitness) Cosign(ctx context.Context, c builder.Cosignature) error {
	return w.logWitnessing.Cosign(ctx, w.operator, c)
}

// startLocalWitnesses makes each local builder a witness of the log too,
// with a witness key of its own beside its attestation key.
func (s *system) startLocalWitnesses(ctx context.Context, l *translog.Log) error {
	for i := 1; i <= s.cfg.LocalBuilders; i++ {
		name := fmt.Sprintf("local-%d", i)
		tokenID, err := s.auth.BuilderToken(ctx, "builder "+name, fmt.Sprintf("demo-operator-%d", i),
			fmt.Sprintf("Demo operator %d (local builder %s of this server; not independent)", i, name))
		if err != nil {
			return err
		}
		operator, err := s.auth.OperatorOf(ctx, tokenID)
		if err != nil {
			return err
		}
		w, err := witness.New(witness.Options{
			Log: localWitness{logWitnessing{l}, operator}, Name: name,
			KeyFile: filepath.Join(s.cfg.Keys, "builders", name+".witness.key"),
			Logger:  s.log.With("part", "witness", "witness", name),
		})
		if err != nil {
			return err
		}
		s.background = append(s.background, func(ctx context.Context) {
			logStop(s, "witness "+name, w.Run(ctx, s.cfg.TranslogEvery))
		})
	}
	return nil
}
