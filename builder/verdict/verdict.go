// Package verdict owns the rule that decides a build from its builders'
// results, and nothing else: it does no I/O (apart from Diffoscope, which
// only explains a difference), keeps no state and trusts its caller to pass
// only results whose attestations were verified.
//
// The rule, for k agreeing operators wanted and p jobs still pending:
//
//   - A result counts when it succeeded, reported at least one output and
//     its builder is bound to an operator (an admin binds builder tokens to
//     operator organisations; an unbound builder's operator is "" and its
//     result counts for nothing). Successful results are grouped by their
//     complete output set: two results agree only if they list the same
//     paths with the same digests.
//   - A group's strength is the number of DISTINCT operators in it. Two
//     builders of one operator count once.
//   - The cold witness: the coordinator assigns one job of every build to
//     run with empty caches (Result.Cold, checked by the caller against the
//     job and the signed attestation). A group holds the witness when that
//     result is in it. Builders whose caches were poisoned the same way
//     agree with each other, never with the witness.
//   - reproducible: some group has at least k distinct operators and holds
//     the cold witness. It is decided as soon as that happens, even if
//     other builders disagree or jobs are pending; the disagreements are
//     still listed in Differences.
//   - pending: no group is reproducible yet, but one still could be: the
//     strongest group plus the pending jobs could reach k (each pending job
//     is assumed to come from a new operator and to agree), and the group
//     holds the witness or the witness's job is pending.
//   - unreproducible: no group can become reproducible any more, and at
//     least two successful results disagree. Differences lists every path
//     whose digests differ or that some builders did not produce.
//   - failed: no group can become reproducible any more and no
//     disagreement explains it: builders failed, too few distinct operators
//     ran the build, or the cold witness failed.
//
// With several groups of equal strength, the one with more results and then
// the one whose output set sorts first is reported, so Decide is
// deterministic.
package verdict

import (
	"fmt"
	"sort"
	"strings"
)

// State is the outcome of a build.
type State string

// The four states of a build.
const (
	Pending        State = "pending"
	Reproducible   State = "reproducible"
	Unreproducible State = "unreproducible"
	Failed         State = "failed"
)

// Result is what one job of a build returned.
type Result struct {
	JobID     string            `json:"job_id"`
	BuilderID string            `json:"builder_id"`
	Operator  string            `json:"operator"`
	Outputs   map[string]string `json:"outputs"` // path → digest
	Failed    bool              `json:"failed"`
	Reason    string            `json:"reason,omitempty"` // why it failed
	// Cold marks the cold witness: the job assigned to run with empty
	// caches, whose verified attestation says it did.
	Cold bool `json:"cold,omitempty"`
}

// Outstanding is what a build still waits for.
type Outstanding struct {
	Jobs int  // jobs queued or running
	Cold bool // the cold witness's job is among them
}

// Verdict is the decision about a build.
type Verdict struct {
	State State `json:"state"`
	// Agreeing is the number of distinct operators whose builders agree on
	// the strongest output set.
	Agreeing int `json:"agreeing"`
	// Outputs is the agreed output set (path → digest) when reproducible.
	Outputs map[string]string `json:"outputs,omitempty"`
	// ColdJob is the cold witness among the agreeing jobs when reproducible.
	ColdJob string `json:"cold_job,omitempty"`
	// Differences lists every path on which successful results disagree,
	// sorted by path.
	Differences []Difference `json:"differences,omitempty"`
	// Failures lists the results that did not count, in input order.
	Failures []Failure `json:"failures,omitempty"`
	// Reason says in one sentence why the build is in this state.
	Reason string `json:"reason"`
}

// Difference is one path on which builders disagree.
type Difference struct {
	Path string `json:"path"`
	// Digests maps each digest produced for Path to the sorted ids of the
	// builders that produced it.
	Digests map[string][]string `json:"digests"`
	// Missing lists the sorted ids of successful builders that did not
	// produce Path at all.
	Missing []string `json:"missing,omitempty"`
}

// Failure is a result that did not count towards any group.
type Failure struct {
	JobID     string `json:"job_id"`
	BuilderID string `json:"builder_id"`
	Reason    string `json:"reason"`
}

type group struct {
	key       string
	outputs   map[string]string
	operators map[string]bool
	results   int
	coldJob   string // the cold witness in this group, if any
}

// Decide applies the rule in the package comment to results, wanting k
// distinct agreeing operators (k below 1 counts as 1), with what is still
// to come (negative job counts count as 0).
func Decide(results []Result, k int, out Outstanding) Verdict {
	k = max(k, 1)
	pending := max(out.Jobs, 0)

	var (
		v          Verdict
		successful []Result
		byKey      = map[string]*group{}
	)
	for _, r := range results {
		switch {
		case r.Failed:
			reason := r.Reason
			if reason == "" {
				reason = "failed"
			}
			v.Failures = append(v.Failures, Failure{JobID: r.JobID, BuilderID: r.BuilderID, Reason: reason})
			continue
		case len(r.Outputs) == 0:
			v.Failures = append(v.Failures, Failure{JobID: r.JobID, BuilderID: r.BuilderID, Reason: "succeeded without outputs"})
			continue
		case r.Operator == "":
			v.Failures = append(v.Failures, Failure{JobID: r.JobID, BuilderID: r.BuilderID, Reason: "its builder is not bound to an operator, so its result counts for nothing"})
			continue
		}
		successful = append(successful, r)
		key := outputKey(r.Outputs)
		g, ok := byKey[key]
		if !ok {
			g = &group{key: key, outputs: r.Outputs, operators: map[string]bool{}}
			byKey[key] = g
		}
		g.operators[r.Operator] = true
		g.results++
		if r.Cold && g.coldJob == "" {
			g.coldJob = r.JobID
		}
	}
	groups := make([]*group, 0, len(byKey))
	for _, g := range byKey {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if len(a.operators) != len(b.operators) {
			return len(a.operators) > len(b.operators)
		}
		if (a.coldJob != "") != (b.coldJob != "") {
			return a.coldJob != ""
		}
		if a.results != b.results {
			return a.results > b.results
		}
		return a.key < b.key
	})
	if len(groups) > 1 {
		v.Differences = differences(successful)
	}
	best := 0
	if len(groups) > 0 {
		best = len(groups[0].operators)
	}
	v.Agreeing = best
	var winner *group
	possible := out.Cold && best+pending >= k // a group with the witness still to come
	for _, g := range groups {
		if len(g.operators) >= k && g.coldJob != "" && winner == nil {
			winner = g
		}
		if len(g.operators)+pending >= k && (g.coldJob != "" || out.Cold) {
			possible = true
		}
	}

	switch {
	case winner != nil:
		v.State = Reproducible
		v.Agreeing = len(winner.operators)
		v.ColdJob = winner.coldJob
		v.Outputs = make(map[string]string, len(winner.outputs))
		for p, d := range winner.outputs {
			v.Outputs[p] = d
		}
		v.Reason = fmt.Sprintf("%s agree on %s (%d needed), the cold witness %s among them",
			plural(v.Agreeing, "operator"), plural(len(v.Outputs), "output"), k, winner.coldJob)
		if len(v.Differences) > 0 {
			v.Reason += fmt.Sprintf("; other builders differ on %s", plural(len(v.Differences), "path"))
		}
	case possible:
		v.State = Pending
		v.Reason = fmt.Sprintf("%s agree, %d needed, %s pending", plural(best, "operator"), k, plural(pending, "job"))
		if best >= k {
			v.Reason += "; waiting for the cold witness (the job run with empty caches)"
		}
	case len(groups) > 1:
		v.State = Unreproducible
		v.Reason = fmt.Sprintf("%d successful results disagree on %s and no output set can reach %d agreeing operators",
			len(successful), plural(len(v.Differences), "path"), k)
	case best >= k:
		v.State = Failed
		v.Reason = fmt.Sprintf("%s agree but none of them is the cold witness (the job run with empty caches), and it cannot come any more; %s did not count",
			plural(best, "operator"), plural(len(v.Failures), "result"))
	default:
		v.State = Failed
		v.Reason = fmt.Sprintf("%s agree, %d needed, no job pending; %s did not count",
			plural(best, "operator"), k, plural(len(v.Failures), "result"))
	}
	return v
}

// outputKey is a canonical text of an output set; equal sets, equal keys.
func outputKey(outputs map[string]string) string {
	var b strings.Builder
	for _, p := range sortedKeys(outputs) {
		// Paths and digests cannot contain NUL, so the key is unambiguous.
		b.WriteString(p)
		b.WriteByte(0)
		b.WriteString(outputs[p])
		b.WriteByte(0)
	}
	return b.String()
}

// differences lists the paths on which the successful results disagree:
// more than one digest, or produced by some builders and not others.
func differences(successful []Result) []Difference {
	paths := map[string]bool{}
	for _, r := range successful {
		for p := range r.Outputs {
			paths[p] = true
		}
	}
	var diffs []Difference
	for _, p := range sortedKeys(paths) {
		d := Difference{Path: p, Digests: map[string][]string{}}
		missing := map[string]bool{}
		for _, r := range successful {
			if digest, ok := r.Outputs[p]; ok {
				d.Digests[digest] = appendUnique(d.Digests[digest], r.BuilderID)
			} else {
				missing[r.BuilderID] = true
			}
		}
		if len(d.Digests) < 2 && len(missing) == 0 {
			continue
		}
		for _, ids := range d.Digests {
			sort.Strings(ids)
		}
		d.Missing = sortedKeys(missing)
		diffs = append(diffs, d)
	}
	return diffs
}

func appendUnique(ids []string, id string) []string {
	for _, have := range ids {
		if have == id {
			return ids
		}
	}
	return append(ids, id)
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
