package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/farmhttp"
	"github.com/afterlife-oss/afterlife/builder/witness"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/logevent"
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
		DB: s.db, KeyDir: s.cfg.Keys, Origin: translog.OriginFor(s.cfg.PublicURL), Now: s.now,
		Quorum: s.cfg.TranslogQuorum, Outside: ws,
		Logger: s.log.With("part", "translog"), Replica: s.cfg.ReplicaID,
		Sources: map[string]translog.Source{
			catalogSourceName:  logevent.Func(p.catalog.LogEvents),
			escrowSourceName:   logevent.Func(p.escrow.LogEvents),
			registrySourceName: logevent.Func(p.reg.LogEvents),
			farmSourceName:     logevent.Func(p.coord.LogEvents),
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
	s.background = append(s.background, func(ctx context.Context) {
		p.reg.KeepLogEntries(ctx, l, registrySourceName, max(s.cfg.TranslogEvery, time.Second))
	})
	if s.cfg.TranslogInRoot {
		s.background = append(s.background, func(ctx context.Context) { p.reg.KeepLogPolicy(ctx, l, max(s.cfg.TranslogEvery, time.Second)) })
	}
	return s.startLocalWitnesses(ctx, l)
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

func (e productLogEntries) HandoverEntries(ctx context.Context, deposits []string) (map[string]int64, error) {
	if e.p.translog == nil {
		return nil, nil
	}
	seqs, err := e.p.escrow.HandoverLogSeqs(ctx, deposits)
	if err != nil {
		return nil, err
	}
	var list []int64
	for _, s := range seqs {
		list = append(list, s)
	}
	idx, err := e.p.translog.EntryIndexes(ctx, escrowSourceName, list)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for d, s := range seqs {
		if i, ok := idx[s]; ok {
			out[d] = i
		}
	}
	return out, nil
}

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
