// Package bench holds afterlife's load benchmarks: the device update check
// and downloads under wrk beside nginx, the web pages of a running demo,
// an example recipe built in the sandbox beside the same steps run
// directly, and a soak of two replicas under simulated devices and
// builders. It has benchmark files only; scripts/bench.sh runs them and
// prints each figure beside its baseline. It must not assert wall-clock
// times: benchmarks measure, tests judge.
package bench
