package coord

import (
	"context"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/db"
)

// Activity is the farm's recent work, the numbers behind the admin
// page's charts: how many jobs waited for a builder through the last day,
// and how long the newest decided builds took.
type Activity struct {
	Since  time.Time       `json:"since"`
	Until  time.Time       `json:"until"`
	Queue  []QueueSample   `json:"queue"`  // oldest first, one per ActivityStep, the last at Until
	Builds []BuildDuration `json:"builds"` // oldest first, at most ActivityBuilds
}

// QueueSample is how many jobs were waiting for a builder at one moment:
// created, not yet started (nor finished without starting).
type QueueSample struct {
	At      time.Time `json:"at"`
	Waiting int       `json:"waiting"`
}

// BuildDuration is how long one decided build took, from its submission
// to its verdict.
type BuildDuration struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	State   verdict.State `json:"state"`
	Decided time.Time     `json:"decided"`
	Seconds float64       `json:"seconds"`
}

// The activity's window and sizes.
const (
	ActivityWindow = 24 * time.Hour
	ActivityStep   = time.Hour
	ActivityBuilds = 30
	maxQueueRows   = 100_000 // jobs read for the queue samples
)

// Activity reports the queue depth through the last ActivityWindow, one
// sample per ActivityStep, and the durations of the newest decided builds.
func (s *Service) Activity(ctx context.Context) (Activity, error) {
	until := s.now().UTC().Truncate(time.Second)
	a := Activity{Since: until.Add(-ActivityWindow), Until: until, Queue: []QueueSample{}, Builds: []BuildDuration{}}
	// A job waits from its creation until it starts (or ends unstarted).
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT created, started, finished FROM farm_jobs
		WHERE created <= ? AND (started > ? OR (started = 0 AND (finished = 0 OR finished > ?)))
		ORDER BY created DESC LIMIT ?`), db.Millis(until), db.Millis(a.Since), db.Millis(a.Since), maxQueueRows)
	if err != nil {
		return a, fmt.Errorf("coord: activity: %w", db.Classify(err))
	}
	type wait struct{ from, to int64 } // to 0: still waiting
	var waits []wait
	for rows.Next() {
		var created, started, finished int64
		if err := rows.Scan(&created, &started, &finished); err != nil {
			rows.Close()
			return a, fmt.Errorf("coord: activity: %w", err)
		}
		w := wait{from: created, to: started}
		if started == 0 {
			w.to = finished
		}
		waits = append(waits, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, db.Classify(err)
	}
	for at := a.Since; !at.After(until); at = at.Add(ActivityStep) {
		ms := db.Millis(at)
		n := 0
		for _, w := range waits {
			if w.from <= ms && (w.to == 0 || w.to > ms) {
				n++
			}
		}
		a.Queue = append(a.Queue, QueueSample{At: at, Waiting: n})
	}

	rows, err = s.db.QueryContext(ctx, s.db.Q(`SELECT id, name, state, created, decided FROM farm_builds WHERE decided > 0
		ORDER BY decided DESC, id DESC LIMIT ?`), ActivityBuilds)
	if err != nil {
		return a, fmt.Errorf("coord: activity: %w", db.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var b BuildDuration
		var state string
		var created, decided int64
		if err := rows.Scan(&b.ID, &b.Name, &state, &created, &decided); err != nil {
			return a, fmt.Errorf("coord: activity: %w", err)
		}
		b.State, b.Decided = verdict.State(state), db.FromMillis(decided)
		b.Seconds = float64(max(decided-created, 0)) / 1000
		a.Builds = append(a.Builds, b)
	}
	if err := rows.Err(); err != nil {
		return a, db.Classify(err)
	}
	for i, j := 0, len(a.Builds)-1; i < j; i, j = i+1, j-1 {
		a.Builds[i], a.Builds[j] = a.Builds[j], a.Builds[i]
	}
	return a, nil
}
