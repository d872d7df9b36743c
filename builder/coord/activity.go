package coord

import (
	"context"
	"fmt"
	"sort"
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

// QueueSample is the most jobs that waited for a builder at once (created,
// not yet started, nor finished without starting) during the hour before
// At.
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
// sample per ActivityStep (the most jobs waiting at once in the step before
// it, so a short wait between samples still shows), and the durations of
// the newest decided builds.
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
	// Sweep the waits' starts and ends in time order; within each hour,
	// keep the most jobs that waited at once.
	type event struct {
		at    int64
		delta int
	}
	var events []event
	for rows.Next() {
		var created, started, finished int64
		if err := rows.Scan(&created, &started, &finished); err != nil {
			rows.Close()
			return a, fmt.Errorf("coord: activity: %w", err)
		}
		end := started
		if end == 0 {
			end = finished
		}
		events = append(events, event{created, +1})
		if end != 0 {
			events = append(events, event{end, -1})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, db.Classify(err)
	}
	// A job that ends as another begins did not wait beside it.
	sort.Slice(events, func(i, j int) bool {
		if events[i].at != events[j].at {
			return events[i].at < events[j].at
		}
		return events[i].delta < events[j].delta
	})
	i, waiting := 0, 0
	for at := a.Since; !at.After(until); at = at.Add(ActivityStep) {
		from, to := db.Millis(at.Add(-ActivityStep)), db.Millis(at)
		for ; i < len(events) && events[i].at <= from; i++ {
			waiting += events[i].delta
		}
		most := waiting
		for ; i < len(events) && events[i].at < to; i++ {
			waiting += events[i].delta
			most = max(most, waiting)
		}
		a.Queue = append(a.Queue, QueueSample{At: at, Waiting: most})
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
