package verdict

import (
	"reflect"
	"testing"
)

const (
	fwA  = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	fwB  = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	elfA = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	map1 = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
)

func ok(builder, operator string, outputs map[string]string) Result {
	return Result{JobID: "job-" + builder, BuilderID: builder, Operator: operator, Outputs: outputs}
}

// cold is the cold witness: the job the coordinator assigned to run with
// empty caches.
func cold(builder, operator string, outputs map[string]string) Result {
	r := ok(builder, operator, outputs)
	r.Cold = true
	return r
}

// waiting is n jobs still to come, the cold witness among them.
func waiting(n int) Outstanding { return Outstanding{Jobs: n, Cold: true} }

func failed(builder, operator, reason string) Result {
	return Result{JobID: "job-" + builder, BuilderID: builder, Operator: operator, Failed: true, Reason: reason}
}

func TestDecide(t *testing.T) {
	same := map[string]string{"fw.bin": fwA, "fw.elf": elfA}
	otherBin := map[string]string{"fw.bin": fwB, "fw.elf": elfA}
	withMap := map[string]string{"fw.bin": fwA, "fw.elf": elfA, "fw.map": map1}
	binOnly := map[string]string{"fw.bin": fwB}

	tests := []struct {
		name    string
		results []Result
		k       int
		pending Outstanding
		want    Verdict
	}{
		{
			name:    "two operators that agree make a build reproducible",
			results: []Result{cold("b1", "alice", same), ok("b2", "bob", same)},
			k:       2,
			want:    Verdict{State: Reproducible, Agreeing: 2, Outputs: same, ColdJob: "job-b1"},
		},
		{
			name:    "one operator with two builders counts once and waits for another operator",
			results: []Result{cold("b1", "alice", same), ok("b2", "alice", same)},
			k:       2, pending: waiting(1),
			want: Verdict{State: Pending, Agreeing: 1},
		},
		{
			name:    "one operator with two builders and nothing pending fails",
			results: []Result{cold("b1", "alice", same), ok("b2", "alice", same)},
			k:       2,
			want:    Verdict{State: Failed, Agreeing: 1},
		},
		{
			name:    "one against one with nothing pending is unreproducible and lists differing and missing files",
			results: []Result{cold("b1", "alice", withMap), ok("b2", "bob", binOnly)},
			k:       2,
			want: Verdict{State: Unreproducible, Agreeing: 1, Differences: []Difference{
				{Path: "fw.bin", Digests: map[string][]string{fwA: {"b1"}, fwB: {"b2"}}},
				{Path: "fw.elf", Digests: map[string][]string{elfA: {"b1"}}, Missing: []string{"b2"}},
				{Path: "fw.map", Digests: map[string][]string{map1: {"b1"}}, Missing: []string{"b2"}},
			}},
		},
		{
			name:    "one against one with a job pending waits",
			results: []Result{cold("b1", "alice", same), ok("b2", "bob", otherBin)},
			k:       2, pending: waiting(1),
			want: Verdict{State: Pending, Agreeing: 1, Differences: []Difference{
				{Path: "fw.bin", Digests: map[string][]string{fwA: {"b1"}, fwB: {"b2"}}},
			}},
		},
		{
			name:    "two of three agreeing is reproducible and still lists the third builder's difference",
			results: []Result{cold("b1", "alice", same), ok("b3", "carol", otherBin), ok("b2", "bob", same)},
			k:       2,
			want: Verdict{State: Reproducible, Agreeing: 2, Outputs: same, ColdJob: "job-b1", Differences: []Difference{
				{Path: "fw.bin", Digests: map[string][]string{fwA: {"b1", "b2"}, fwB: {"b3"}}},
			}},
		},
		{
			name:    "agreement is decided as soon as k operators agree even with jobs pending",
			results: []Result{cold("b1", "alice", same), ok("b2", "bob", same)},
			k:       2, pending: waiting(3),
			want: Verdict{State: Reproducible, Agreeing: 2, Outputs: same, ColdJob: "job-b1"},
		},
		{
			name:    "an extra output file breaks agreement",
			results: []Result{cold("b1", "alice", same), ok("b2", "bob", withMap)},
			k:       2,
			want: Verdict{State: Unreproducible, Agreeing: 1, Differences: []Difference{
				{Path: "fw.map", Digests: map[string][]string{map1: {"b2"}}, Missing: []string{"b1"}},
			}},
		},
		{
			name:    "a group of one operator cannot outvote a larger group of the same operator",
			results: []Result{ok("b1", "alice", same), ok("b2", "alice", same), cold("b3", "bob", otherBin), ok("b4", "carol", otherBin)},
			k:       2,
			want: Verdict{State: Reproducible, Agreeing: 2, Outputs: otherBin, ColdJob: "job-b3", Differences: []Difference{
				{Path: "fw.bin", Digests: map[string][]string{fwA: {"b1", "b2"}, fwB: {"b3", "b4"}}},
			}},
		},
		{
			name:    "all builders failing with nothing pending fails and lists the failures",
			results: []Result{failed("b1", "alice", "step 2 exited 1"), failed("b2", "bob", "")},
			k:       2,
			want: Verdict{State: Failed, Failures: []Failure{
				{JobID: "job-b1", BuilderID: "b1", Reason: "step 2 exited 1"},
				{JobID: "job-b2", BuilderID: "b2", Reason: "failed"},
			}},
		},
		{
			name:    "one success and one failure with nothing pending fails",
			results: []Result{cold("b1", "alice", same), failed("b2", "bob", "timeout")},
			k:       2,
			want: Verdict{State: Failed, Agreeing: 1, Failures: []Failure{
				{JobID: "job-b2", BuilderID: "b2", Reason: "timeout"},
			}},
		},
		{
			name:    "one success and one failure with a retry pending waits",
			results: []Result{cold("b1", "alice", same), failed("b2", "bob", "timeout")},
			k:       2, pending: waiting(1),
			want: Verdict{State: Pending, Agreeing: 1, Failures: []Failure{
				{JobID: "job-b2", BuilderID: "b2", Reason: "timeout"},
			}},
		},
		{
			name:    "a success without outputs does not count",
			results: []Result{cold("b1", "alice", same), ok("b2", "bob", nil)},
			k:       2,
			want: Verdict{State: Failed, Agreeing: 1, Failures: []Failure{
				{JobID: "job-b2", BuilderID: "b2", Reason: "succeeded without outputs"},
			}},
		},
		{
			name:    "no results yet with jobs pending waits",
			results: nil,
			k:       2, pending: waiting(2),
			want: Verdict{State: Pending},
		},
		{
			name:    "too few jobs to ever reach k fails",
			results: nil,
			k:       3, pending: waiting(2),
			want: Verdict{State: Failed},
		},
		{
			name:    "builders not bound to an operator count for nothing",
			results: []Result{cold("b1", "", same), ok("b2", "", same)},
			k:       2,
			want: Verdict{State: Failed, Failures: []Failure{
				{JobID: "job-b1", BuilderID: "b1", Reason: "its builder is not bound to an operator, so its result counts for nothing"},
				{JobID: "job-b2", BuilderID: "b2", Reason: "its builder is not bound to an operator, so its result counts for nothing"},
			}},
		},
		{
			name:    "an unbound builder agreeing with a bound one does not make a quorum of two",
			results: []Result{cold("b1", "alice", same), ok("b2", "", same)},
			k:       2,
			want: Verdict{State: Failed, Agreeing: 1, Failures: []Failure{
				{JobID: "job-b2", BuilderID: "b2", Reason: "its builder is not bound to an operator, so its result counts for nothing"},
			}},
		},
		{
			name:    "k agreeing warm builds without the cold witness are not reproducible when the witness failed",
			results: []Result{ok("b2", "alice", same), ok("b3", "bob", same), {JobID: "job-b1", BuilderID: "b1", Operator: "carol", Failed: true, Reason: "timeout", Cold: true}},
			k:       2,
			want: Verdict{State: Failed, Agreeing: 2, Failures: []Failure{
				{JobID: "job-b1", BuilderID: "b1", Reason: "timeout"},
			}},
		},
		{
			name:    "k agreeing warm builds wait for the cold witness",
			results: []Result{ok("b2", "alice", same), ok("b3", "bob", same)},
			k:       2, pending: waiting(1),
			want: Verdict{State: Pending, Agreeing: 2},
		},
		{
			name:    "k agreeing warm builds and nothing cold to come fail",
			results: []Result{ok("b2", "alice", same), ok("b3", "bob", same)},
			k:       2, pending: Outstanding{Jobs: 1},
			want: Verdict{State: Failed, Agreeing: 2},
		},
		{
			name:    "warm builds poisoned alike disagree with the cold witness, so the build is unreproducible",
			results: []Result{ok("b2", "alice", otherBin), ok("b3", "bob", otherBin), cold("b1", "carol", same)},
			k:       2,
			want: Verdict{State: Unreproducible, Agreeing: 2, Differences: []Difference{
				{Path: "fw.bin", Digests: map[string][]string{fwA: {"b1"}, fwB: {"b2", "b3"}}},
			}},
		},
		{
			name:    "k below one counts as one",
			results: []Result{cold("b1", "alice", same)},
			k:       0,
			want:    Verdict{State: Reproducible, Agreeing: 1, Outputs: same, ColdJob: "job-b1"},
		},
		{
			name:    "the same builder reported twice is listed once per digest",
			results: []Result{cold("b1", "alice", same), cold("b1", "alice", same), ok("b2", "bob", otherBin)},
			k:       2,
			want: Verdict{State: Unreproducible, Agreeing: 1, Differences: []Difference{
				{Path: "fw.bin", Digests: map[string][]string{fwA: {"b1"}, fwB: {"b2"}}},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.results, tc.k, tc.pending)
			if got.Reason == "" {
				t.Error("verdict has no reason")
			}
			got.Reason = ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decide =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
}

func TestDecideDoesNotShareItsOutputsWithTheCaller(t *testing.T) {
	outputs := map[string]string{"fw.bin": fwA}
	v := Decide([]Result{cold("b1", "alice", outputs), ok("b2", "bob", map[string]string{"fw.bin": fwA})}, 2, Outstanding{})
	outputs["fw.bin"] = fwB
	if v.Outputs["fw.bin"] != fwA {
		t.Errorf("verdict outputs changed with the caller's map: %v", v.Outputs)
	}
}

func TestDecideIsIndependentOfResultOrder(t *testing.T) {
	same := map[string]string{"fw.bin": fwA}
	other := map[string]string{"fw.bin": fwB}
	results := []Result{cold("b1", "alice", same), ok("b2", "bob", other), ok("b3", "carol", same), ok("b4", "dave", other)}
	first := Decide(results, 3, Outstanding{})
	reversed := []Result{results[3], results[2], results[1], results[0]}
	second := Decide(reversed, 3, Outstanding{})
	if !reflect.DeepEqual(first, second) {
		t.Errorf("verdict depends on result order:\n%+v\n%+v", first, second)
	}
	if first.State != Unreproducible {
		t.Errorf("state = %s, want unreproducible", first.State)
	}
}
