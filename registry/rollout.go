package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// Rollout is a release's phased rollout: the signed schedule and state
// (device.SignedRollout: stages of a percent of the fleet's buckets and a
// dwell time each, from a start that pauses move later), with who changed
// it last and why. The stage is computed from the clock, never stored per
// device, and the update check applies it from the in-memory index.
type Rollout struct {
	device.SignedRollout
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
	// Stage and Percent are computed when the release is read.
	Stage   int `json:"stage"`
	Percent int `json:"percent"`
}

// maxStages bounds a rollout's stages (device.MaxStages).
const maxStages = device.MaxStages

// RolloutRequest is the body of POST /v1/releases/:id/rollout.
type RolloutRequest struct {
	Stages []device.RolloutStage `json:"stages"`
}

// withStage fills in the computed stage and percent at now.
func (r *Rollout) withStage(now time.Time) *Rollout {
	if r != nil {
		r.Stage, r.Percent = r.StageAt(now)
	}
	return r
}

// describe says where a rollout stands, for events.
func (r *Rollout) describe(now time.Time) string {
	stage, percent := r.StageAt(now)
	return fmt.Sprintf("stage %d of %d, %d%% of devices", stage, len(r.Stages), percent)
}

// StartRollout puts a release into a phased rollout starting now: from
// then on, update checks offer it only to devices whose bucket its current
// stage reaches. Devices that installed it already keep it.
func (s *Service) StartRollout(ctx context.Context, who principal.Principal, id string, stages []device.RolloutStage) (Release, error) {
	rel, err := s.changeable(ctx, who, id)
	if err != nil {
		return Release{}, err
	}
	if err := device.ValidStages(stages); err != nil {
		return Release{}, err
	}
	if rel.PulledBack {
		return Release{}, errs.E(errs.Conflict, "release %s was pulled back", id)
	}
	if rel.Rollout != nil && rel.Rollout.State != device.RolloutAborted {
		return Release{}, errs.E(errs.Conflict, "release %s already has a rollout (%s); abort it first", id, rel.Rollout.State)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	ro := &Rollout{SignedRollout: device.SignedRollout{State: device.RolloutActive, Start: now, Stages: stages}}
	return s.setRollout(ctx, who.Actor(), rel, ro, "rollout_started", "")
}

// Rollout actions a person takes.
const (
	RolloutPause  = "pause"
	RolloutResume = "resume"
	RolloutAbort  = "abort"
)

// ChangeRollout pauses (the stage stays where it is), resumes (a paused
// or halted rollout goes on where it stopped) or aborts (offered to no
// more devices, for good) a release's rollout.
func (s *Service) ChangeRollout(ctx context.Context, who principal.Principal, id, action, reason string) (Release, error) {
	rel, err := s.changeable(ctx, who, id)
	if err != nil {
		return Release{}, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 2000 {
		return Release{}, errs.E(errs.Invalid, "a rollout change needs a reason of 1 to 2000 bytes")
	}
	if rel.Rollout == nil {
		return Release{}, errs.E(errs.Conflict, "release %s has no rollout", id)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	ro := *rel.Rollout
	state := ro.State
	switch {
	case action == RolloutPause && state == device.RolloutActive:
		ro.State, ro.PausedAt = device.RolloutPaused, now
	case action == RolloutResume && (state == device.RolloutPaused || state == device.RolloutHalted):
		ro.Start = ro.Start.Add(now.Sub(ro.PausedAt))
		ro.State, ro.PausedAt = device.RolloutActive, time.Time{}
	case action == RolloutAbort && state != device.RolloutAborted:
		if ro.PausedAt.IsZero() {
			ro.PausedAt = now
		}
		ro.State = device.RolloutAborted
	case action != RolloutPause && action != RolloutResume && action != RolloutAbort:
		return Release{}, errs.E(errs.Invalid, "rollout action %q: want pause, resume or abort", action)
	default:
		return Release{}, errs.E(errs.Conflict, "the rollout of release %s is %s; it cannot %s", id, state, action)
	}
	kind := map[string]string{RolloutPause: "rollout_paused", RolloutResume: "rollout_resumed", RolloutAbort: "rollout_aborted"}[action]
	return s.setRollout(ctx, who.Actor(), rel, &ro, kind, reason)
}

// haltRollout stops a rollout that failure reports say is going wrong:
// the release is offered to no more devices until a person resumes it.
func (s *Service) haltRollout(ctx context.Context, rel Release, why string) error {
	ro := *rel.Rollout
	if ro.State == device.RolloutActive {
		ro.PausedAt = s.now().UTC().Truncate(time.Millisecond)
	}
	ro.State = device.RolloutHalted
	_, err := s.setRollout(ctx, "registry:review", rel, &ro, "rollout_halted", why)
	if err == nil {
		s.log.Warn("rollout halted", "release", rel.ID, "product", rel.Product, "version", rel.Version, "why", why)
	}
	return err
}

// setRollout re-signs the release's targets with the new rollout, stores
// it and logs the event.
func (s *Service) setRollout(ctx context.Context, actor string, rel Release, ro *Rollout, kind, reason string) (Release, error) {
	before := rel.targets()
	ro.Reason, ro.UpdatedAt, ro.UpdatedBy = reason, s.now().UTC().Truncate(time.Millisecond), actor
	prev := ""
	if rel.Rollout != nil {
		b, _ := json.Marshal(rel.Rollout.SignedRollout)
		prev = string(b)
	}
	rel.Rollout = ro
	enc, err := json.Marshal(ro)
	if err != nil {
		return Release{}, fmt.Errorf("registry: encode rollout: %w", err)
	}
	detail := fmt.Sprintf("%s rollout %s (%s)", rel.Version, strings.TrimPrefix(kind, "rollout_"), ro.describe(s.now()))
	if reason != "" {
		detail += ": " + reason
	}
	err = s.change(ctx, nil, rel.targets(), nil, before, nil, func(tx *sql.Tx) error {
		// The rollout must be the one this change was computed from.
		var cur string
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT rollout FROM releases WHERE id = ? AND yanked = 0`), rel.ID).Scan(&cur); err != nil {
			return err
		}
		if curSigned := signedPart(cur); curSigned != prev {
			return errs.E(errs.Conflict, "the rollout of release %s changed concurrently", rel.ID)
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET rollout = ? WHERE id = ?`), string(enc), rel.ID); err != nil {
			return err
		}
		return s.event(ctx, tx, rel.Product, rel.ID, actor, kind, detail)
	})
	if err != nil {
		return Release{}, fmt.Errorf("registry: rollout of %s: %w", rel.ID, err)
	}
	rel.Rollout.withStage(s.now())
	return rel, nil
}

// signedPart re-encodes the signed part of a stored rollout, to compare.
func signedPart(stored string) string {
	if stored == "" {
		return ""
	}
	var r Rollout
	if json.Unmarshal([]byte(stored), &r) != nil {
		return stored
	}
	b, _ := json.Marshal(r.SignedRollout)
	return string(b)
}
