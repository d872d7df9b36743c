package device

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Phased rollouts. A release can reach the fleet in stages (1 % → 10 % →
// 50 % → 100 %, each for a dwell time). A device id names a model shared
// by the whole fleet, so the share is taken over install ids: each device
// computes its bucket, 0–99, from its random install id (Bucket) and
// sends only the bucket. A device is in the rollout while its bucket is
// below the stage's percent. The stage is computed from the signed start
// and dwell times, never stored per device; the registry applies it to
// update checks and signs the schedule into the target (SignedRollout),
// so a device reading a static mirror follows it too. Pauses and halts
// reach mirror devices only with the next copy of the metadata: there
// they are advisory.

// Rollout limits.
const (
	MaxStages = 10
	MaxDwell  = 365 * 24 * time.Hour
)

// Rollout states.
const (
	RolloutActive  = "active"
	RolloutPaused  = "paused"  // by a person: the stage stays where it is
	RolloutHalted  = "halted"  // by failure reports: offered to no more devices until resumed
	RolloutAborted = "aborted" // offered to no more devices, for good
)

// NoBucket is the bucket of a device that sent none (an older client): it
// is reached only when a rollout reaches 100 %.
const NoBucket = 99

// Bucket is a device's rollout bucket, 0–99: a stable hash of its random
// install id, so the same device stays in the same bucket and the fleet
// spreads evenly over them.
func Bucket(installID string) int {
	h := sha256.Sum256([]byte("afterlife rollout bucket\x00" + installID))
	return int(binary.BigEndian.Uint64(h[:8]) % 100)
}

// RolloutStage is one step of a rollout: the share of buckets reached, and
// how long the step lasts before the next begins (the last lasts for
// ever).
type RolloutStage struct {
	Percent      int   `json:"percent"`
	DwellSeconds int64 `json:"dwell_seconds"`
}

// SignedRollout is the rollout schedule signed into a release's targets.
// Start is when the first stage began, moved later by the time the rollout
// spent paused; while paused or halted, PausedAt freezes the clock.
type SignedRollout struct {
	State    string         `json:"state"`
	Start    time.Time      `json:"start"`
	PausedAt time.Time      `json:"paused_at,omitzero"`
	Stages   []RolloutStage `json:"stages"`
}

// StageAt is the rollout's stage (1-based) and the percent of buckets it
// reaches at now. A halted or aborted rollout reaches no more devices:
// percent 0, with the stage it stopped at. It allocates nothing: the
// registry calls it on every update check.
func (r *SignedRollout) StageAt(now time.Time) (stage, percent int) {
	if len(r.Stages) == 0 {
		return 0, 100
	}
	at := now
	if r.State != RolloutActive && !r.PausedAt.IsZero() {
		at = r.PausedAt
	}
	elapsed := at.Sub(r.Start)
	var cum time.Duration
	stage = len(r.Stages)
	for i, s := range r.Stages {
		cum += time.Duration(s.DwellSeconds) * time.Second
		if elapsed < cum || i == len(r.Stages)-1 {
			stage, percent = i+1, s.Percent
			break
		}
	}
	if elapsed < 0 {
		stage, percent = 1, r.Stages[0].Percent
	}
	if r.State == RolloutHalted || r.State == RolloutAborted {
		percent = 0
	}
	return stage, percent
}

// Reaches says whether a device in bucket is in the rollout at now.
func (r *SignedRollout) Reaches(bucket int, now time.Time) bool {
	if r == nil {
		return true
	}
	_, percent := r.StageAt(now)
	return bucket >= 0 && bucket < percent
}

// ParseStages reads a rollout's stages as the CLI and the pages take
// them: percents ("1,10,50,100") and one dwell time for every stage but
// the last.
func ParseStages(percents string, dwell time.Duration) ([]RolloutStage, error) {
	var out []RolloutStage
	for _, f := range strings.Split(percents, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "%")))
		if err != nil {
			return nil, errs.E(errs.Invalid, "rollout stages %q: want percents like 1,10,50,100", percents)
		}
		out = append(out, RolloutStage{Percent: n, DwellSeconds: int64(dwell / time.Second)})
	}
	if len(out) > 0 {
		out[len(out)-1].DwellSeconds = 0
	}
	return out, ValidStages(out)
}

// ValidStages says whether stages make a rollout: 1 to MaxStages stages of
// growing percents ending at 100, each but the last with a dwell time.
func ValidStages(st []RolloutStage) error {
	if len(st) == 0 || len(st) > MaxStages {
		return errs.E(errs.Invalid, "a rollout needs 1 to %d stages", MaxStages)
	}
	prev := 0
	for i, s := range st {
		if s.Percent <= prev || s.Percent > 100 {
			return errs.E(errs.Invalid, "rollout stage %d: percents must grow, from 1 to 100 (got %d after %d)", i+1, s.Percent, prev)
		}
		if s.DwellSeconds < 0 || time.Duration(s.DwellSeconds)*time.Second > MaxDwell {
			return errs.E(errs.Invalid, "rollout stage %d: a dwell time between 0 and a year", i+1)
		}
		if i < len(st)-1 && s.DwellSeconds == 0 {
			return errs.E(errs.Invalid, "rollout stage %d: every stage but the last needs a dwell time", i+1)
		}
		prev = s.Percent
	}
	if prev != 100 {
		return errs.E(errs.Invalid, "the last rollout stage must reach 100%%, not %d%%", prev)
	}
	return nil
}
