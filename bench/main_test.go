package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// need fails the benchmark when a tool the comparison needs is missing.
func need(tb testing.TB, tools ...string) map[string]string {
	tb.Helper()
	paths := map[string]string{}
	for _, t := range tools {
		p, err := exec.LookPath(t)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/sbin"} {
				if _, serr := os.Stat(filepath.Join(dir, t)); serr == nil {
					p, err = filepath.Join(dir, t), nil
					break
				}
			}
		}
		if err != nil {
			tb.Fatalf("%s is needed for this benchmark (%v): run scripts/test-deps.sh", t, err)
		}
		paths[t] = p
	}
	return paths
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	ReqPerSec float64
	P50, P99  time.Duration
	Errors    int // socket errors and non-2xx/3xx answers
	Requests  int
}

// wrkOptions say how hard wrk pushes.
type wrkOptions struct {
	Threads, Conns int
	Duration       time.Duration
	Script         string // optional Lua script path
}

func runWrk(tb testing.TB, o wrkOptions, url string) wrkResult {
	tb.Helper()
	bin := need(tb, "wrk")["wrk"]
	args := []string{"-t", strconv.Itoa(o.Threads), "-c", strconv.Itoa(o.Conns),
		"-d", fmt.Sprintf("%ds", int(o.Duration.Seconds())), "--latency"}
	if o.Script != "" {
		args = append(args, "-s", o.Script)
	}
	args = append(args, url)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		tb.Fatalf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return r
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal    = regexp.MustCompile(`(?m)^\s*(\d+) requests in`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx3x = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output")
	}
	r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if r.P50 == 0 || r.P99 == 0 {
		return r, fmt.Errorf("no latency distribution in wrk's output (was --latency given?)")
	}
	if m := wrkSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.Errors += n
		}
	}
	if m := wrkNon2xx3x.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// nginx is an nginx of the benchmark's own: its own prefix, config and
// port, serving root statically with sendfile.
type nginx struct {
	URL  string
	Root string
}

func startNginx(tb testing.TB, root string) *nginx {
	tb.Helper()
	n := startNginxWith(tb, "root "+root+";\n        location / { }")
	n.Root = root
	return n
}

// startNginxCache starts an nginx that proxies to upstream (a base URL)
// and caches update checks as deploy/systemd/nginx-afterlife.conf does.
func startNginxCache(tb testing.TB, upstream string) *nginx {
	tb.Helper()
	return startNginxWith(tb, `location = /v1/devices/updates {
            proxy_pass `+upstream+`;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_cache afterlife_updates;
            proxy_cache_key $scheme$host$uri$is_args$args;
            proxy_cache_valid 200 204 60s;
            proxy_cache_lock on;
            proxy_cache_revalidate on;
            add_header X-Cache-Status $upstream_cache_status always;
        }
        location / { proxy_pass `+upstream+`; }`)
}

// cacheDir is where the benchmark's nginx keeps its proxy cache: in
// memory (/dev/shm) where there is one, as a cache host would give it
// tmpfs or fast local disk, so the measure is not the shared machine's
// disk writeback.
func cacheDir(tb testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "afterlife-bench-cache-")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return filepath.Join(tb.TempDir(), "cache")
}

// startNginxWith starts an nginx whose one server holds server (its
// directives and locations), tuned for load: every core, long keep-alive,
// sendfile, and a proxy cache in memory.
func startNginxWith(tb testing.TB, server string) *nginx {
	tb.Helper()
	need(tb, "nginx")
	url := testenv.StartNginx(tb, testenv.NginxConfig{
		Workers: "auto", Connections: 4096, Server: server,
		HTTP: fmt.Sprintf(`access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    types { application/json json; application/octet-stream bin; }
    default_type application/octet-stream;
    proxy_cache_path %s levels=1:2 keys_zone=afterlife_updates:64m max_size=1g inactive=10m use_temp_path=off;`, cacheDir(tb)),
	})
	return &nginx{URL: url}
}

// procMemory reads a process's peak and current resident set in MiB.
func procMemory(pid int) (hwm, rss float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for key, dst := range map[string]*float64{"VmHWM:": &hwm, "VmRSS:": &rss} {
			if v, ok := strings.CutPrefix(sc.Text(), key); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				*dst = kb / 1024
			}
		}
	}
	return hwm, rss, sc.Err()
}

// servePID finds the `afterlife serve` process that uses data dir: the
// test harness does not hand out its pid.
func servePID(tb testing.TB, data string) int {
	tb.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "serve" {
			continue
		}
		for i, a := range args {
			if a == "--data" && i+1 < len(args) && args[i+1] == data {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
	}
	tb.Fatalf("no afterlife serve process with --data %s", data)
	return 0
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// figure prints one line a reader (and scripts/bench.sh) can read.
func figure(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "FIGURE "+format+"\n", args...)
}
