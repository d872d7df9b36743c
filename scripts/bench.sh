#!/usr/bin/env bash
# Runs afterlife's benchmarks and prints every figure beside its baseline.
# Benchmarks measure; nothing here fails on a slow figure. A group whose
# benchmark fails is shown as "failed" and makes the script exit non-zero.
#   scripts/bench.sh            every group (about 10 minutes on 2 cores)
#   scripts/bench.sh blob web   only the named groups
# Groups: blob escrow tuf sandbox queue update delta download pages search soak device translog mirror
set -uo pipefail
cd "$(dirname "$0")/.."

for tool in wrk nginx openssl bwrap go; do
  if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
    echo "bench: $tool is missing: run scripts/test-deps.sh" >&2
    exit 1
  fi
done

out=$(mktemp -d "${TMPDIR:-/tmp}/afterlife-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
failed=0
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(blob escrow tuf sandbox queue update delta download pages search soak device translog mirror)

# bench NAME PKG REGEX BENCHTIME: runs one go test benchmark group into
# $out/NAME.txt.
bench() {
  local name=$1 pkg=$2 regex=$3 benchtime=$4
  printf 'bench: %-9s %s -bench %s\n' "$name" "$pkg" "$regex" >&2
  if ! go test -run '^$' -bench "$regex" -benchtime "$benchtime" -timeout 20m "$pkg" >"$out/$name.txt" 2>&1; then
    echo "bench: $name failed:" >&2
    tail -30 "$out/$name.txt" >&2
    failed=1
    return 1
  fi
}

# metric NAME BENCH UNIT: the value of UNIT on the result line of BENCH
# (its full name without the -GOMAXPROCS suffix), or empty.
metric() {
  awk -v bench="$2" -v unit="$3" '
    /^Benchmark/ {
      n = $1; sub(/-[0-9]+$/, "", n)
      if (n != bench) next
      for (i = 3; i < NF; i += 2) if ($(i + 1) == unit) { print $i; exit }
    }' "$out/$1.txt" 2>/dev/null
}

# Rows: figure | afterlife | baseline | ratio.
header() { printf '\n%s\n' "$1"; printf '  %-46s %16s  %-30s %7s\n' "figure" "afterlife" "baseline" "ratio"; }
# row LABEL VALUE UNIT BASEVALUE BASELABEL [lower]: ratio is value/base,
# or base/value when lower is better (so >1 always means "beats the baseline").
row() {
  local label=$1 v=$2 unit=$3 bv=$4 blabel=$5 lower=${6:-}
  if [ -z "$v" ]; then
    printf '  %-46s %16s  %-30s %7s\n' "$label" "failed" "" ""
    return
  fi
  awk -v l="$label" -v v="$v" -v u="$unit" -v bv="$bv" -v bl="$blabel" -v lower="$lower" 'BEGIN {
    r = ""
    if (bv != "" && bv + 0 > 0 && v + 0 > 0) r = sprintf("%.2f", lower ? bv / v : v / bv)
    b = (bv == "") ? bl : sprintf("%s %s", fmt(bv), bl)
    printf "  %-46s %16s  %-30s %7s\n", l, fmt(v) " " u, b, r
  }
  function fmt(x) { return (x + 0 >= 100) ? sprintf("%.0f", x) : sprintf("%.2f", x) }'
}
nsms() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.3f", x / 1e6 }'; }
nsus() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.1f", x / 1e3 }'; }
want() { local g; for g in "${groups[@]}"; do [ "$g" = "$1" ] && return 0; done; return 1; }

echo "afterlife benchmarks — $(nproc) cores, $(go env GOVERSION), $(date -u +%Y-%m-%dT%H:%MZ)"

if want blob; then
  bench blob-fs ./internal/blob/fsstore 'BenchmarkPut$' 1x
  bench blob-s3 ./internal/blob/s3store 'BenchmarkPut$' 1x
  header "1. Blob Put, 256 MiB (ratio > 1: faster than hashing alone)"
  row "fsstore Put" "$(metric blob-fs BenchmarkPut MB/s)" MB/s "$(metric blob-fs BenchmarkPut openssl-MB/s)" "MB/s openssl sha256"
  row "s3store Put (MinIO)" "$(metric blob-s3 BenchmarkPut MB/s)" MB/s "$(metric blob-s3 BenchmarkPut openssl-MB/s)" "MB/s openssl sha256"
  row "s3store Put (MinIO), against the store itself" "$(metric blob-s3 BenchmarkPut MB/s)" MB/s "$(metric blob-s3 BenchmarkPut minio-put-MB/s)" "MB/s plain PutObject"
fi

if want escrow; then
  bench escrow ./escrow 'BenchmarkDepositUpload$' 1x
  header "2. Escrow deposit over HTTP of a 1 GiB file (age-encrypted at rest)"
  for st in sqlite+disk postgres+minio; do
    n=BenchmarkDepositUpload/$st
    row "deposit upload, $st" "$(metric escrow "$n" MB/s)" MB/s "$(metric escrow "$n" openssl-MB/s)" "MB/s openssl sha256 of the file"
    if [ "$st" = postgres+minio ]; then
      row "deposit upload, $st, against MinIO" "$(metric escrow "$n" MB/s)" MB/s "$(metric escrow "$n" minio-put-MB/s)" "MB/s plain PutObject"
    fi
    if [ "$st" = sqlite+disk ]; then
      row "  CPU time of the test process, $st" "$(metric escrow "$n" cpu-s)" s "$(metric escrow "$n" openssl-cpu-s)" "s CPU openssl (2×ratio: bound)" lower
    else
      row "  CPU time of the test process, $st" "$(metric escrow "$n" cpu-s)" s "" "(MinIO's and PostgreSQL's not counted)"
    fi
    row "  peak RSS of the test process, $st" "$(metric escrow "$n" peak-RSS-MiB)" MiB "" "(RSS growth $(metric escrow "$n" RSS-growth-MiB) MiB)"
  done
fi

if want tuf; then
  bench tuf ./registry/tuf 'BenchmarkApplyOneInto100k$' 5x
  header "3. TUF: publish one target into a repository of 100k"
  for st in in-memory_store directory_store; do
    row "publish one target, ${st/_/ }" "$(nsms "$(metric tuf "BenchmarkApplyOneInto100k/$st" ns/op)")" ms "" "(no baseline: signs 1 bin + snapshot + timestamp)"
  done
fi

if want sandbox; then
  bench sandbox ./builder/sandbox 'BenchmarkSandboxStartup$' 20x
  bench example ./bench 'BenchmarkExampleBuild$' 1x
  header "4. Sandbox"
  row "start-up: bwrap true" "$(nsms "$(metric sandbox 'BenchmarkSandboxStartup/bwrap_true' ns/op)")" ms \
    "$(nsms "$(metric sandbox 'BenchmarkSandboxStartup/direct_true' ns/op)")" "ms direct exec of true" lower
  row "afterlife-cam build, warm Go cache, in bwrap" "$(metric example BenchmarkExampleBuild sandbox-s)" s \
    "$(metric example BenchmarkExampleBuild direct-s)" "s same steps, no bwrap" lower
  row "  same image from both (1 = yes)" "$(metric example BenchmarkExampleBuild same-image)" "" "" "(each way has its own warm cache)"
  row "afterlife-cam build, cold witness, in bwrap" "$(metric example BenchmarkExampleBuild cold-s)" s \
    "$(metric example BenchmarkExampleBuild sandbox-s)" "s warm Go cache, in bwrap" lower
  row "  cold image = warm image (1 = yes)" "$(metric example BenchmarkExampleBuild cold-same-image)" "" "" "(empty /cache, as the cold witness)"
fi

if want queue; then
  bench queue ./builder/coord 'BenchmarkQueueToStart$' 200x
  header "4. Farm queue-to-start (CreateBuild → long-polling builder holds the job)"
  for dbk in sqlite postgres; do
    row "p50, $dbk" "$(metric queue "BenchmarkQueueToStart/$dbk" p50-ms)" ms "" "(no baseline)"
    row "p95, $dbk" "$(metric queue "BenchmarkQueueToStart/$dbk" p95-ms)" ms "" "(no baseline)"
  done
fi

if want update; then
  bench update-inproc ./registry 'BenchmarkUpdateCheck$' 200000x
  bench update-rollout ./registry 'BenchmarkUpdateCheckRolloutOverhead$' 300x
  bench update ./bench 'BenchmarkUpdateCheckLoad$' 1x
  bench update-index ./bench 'BenchmarkIndexRebuild$' 1x
  header "5. Device update check, 100k products / 1M releases (wrk -t2 -c64 -d10s, random device)"
  u=BenchmarkUpdateCheckLoad
  row "requests/s" "$(metric update $u afterlife-req/s)" req/s "$(metric update $u nginx-req/s)" "req/s nginx static file"
  row "p50 latency" "$(metric update $u afterlife-p50-ms)" ms "$(metric update $u nginx-p50-ms)" "ms nginx" lower
  row "p99 latency" "$(metric update $u afterlife-p99-ms)" ms "$(metric update $u nginx-p99-ms)" "ms nginx" lower
  row "errors (socket + non-2xx)" "$(metric update $u afterlife-errors)" "" "" "(must be 0)"
  row "server CPU a request (load does not count)" "$(metric update $u afterlife-cpu-us)" µs "$(metric update $u nginx-cpu-us)" "µs nginx static" lower
  row "behind nginx proxy_cache: requests/s" "$(metric update $u cached-req/s)" req/s "$(metric update $u nginx-req/s)" "req/s nginx static file"
  row "behind nginx proxy_cache: p99 latency" "$(metric update $u cached-p99-ms)" ms "$(metric update $u nginx-p99-ms)" "ms nginx" lower
  row "behind nginx proxy_cache: errors" "$(metric update $u cached-errors)" "" "" "(must be 0)"
  row "behind nginx proxy_cache: nginx CPU a request" "$(metric update $u cached-cpu-us)" µs "$(metric update $u nginx-cpu-us)" "µs nginx static" lower
  row "handler alone, in-process (no network)" "$(nsus "$(metric update-inproc BenchmarkUpdateCheck ns/op)")" µs/op "" "(wall clock; target 2 µs)"
  row "  its CPU time (shared cores do not count)" "$(nsus "$(metric update-inproc BenchmarkUpdateCheck cpu-ns/op)")" µs/op "" "(target 2 µs)"
  row "  its allocations" "$(metric update-inproc BenchmarkUpdateCheck allocs/op)" allocs/op "" "(target at most 2)"
  row "index rebuild from 1M releases (SQLite)" "$(awk -v x="$(metric update-index BenchmarkIndexRebuild rebuild-ms)" 'BEGIN { if (x != "") printf "%.2f", x / 1000 }')" s "5" "s goal (29 s before #20)" lower
  row "  its CPU time" "$(awk -v x="$(metric update-index BenchmarkIndexRebuild rebuild-cpu-ms)" 'BEGIN { if (x != "") printf "%.2f", x / 1000 }')" s "5" "s goal, as if the cores were free" lower
  row "  Go heap held with the index" "$(metric update-index BenchmarkIndexRebuild heap-MiB)" MiB "" "(after a GC)"
  row "  heap objects with the index" "$(metric update-index BenchmarkIndexRebuild heap-Mobjects)" M "" "(3.01 M before the arena index)"
  row "  GC cycle with the index held: CPU" "$(metric update-index BenchmarkIndexRebuild gc-cpu-ms)" ms "" "(480-700 ms before the arena index)"
  row "  GC cycle with the index held: wall" "$(metric update-index BenchmarkIndexRebuild gc-ms)" ms "" "(runtime.GC, both cores)"
  row "  Go heap at most during a rebuild" "$(metric update-index BenchmarkIndexRebuild peak-heap-MiB)" MiB "" "(beside the index served)"
  row "  allocated a rebuild" "$(awk -v x="$(metric update-index BenchmarkIndexRebuild B/op)" 'BEGIN { if (x != "") printf "%.0f", x / 1048576 }')" MiB "" "(1,619 MiB before the third round)"
  row "  objects allocated a rebuild" "$(awk -v x="$(metric update-index BenchmarkIndexRebuild allocs/op)" 'BEGIN { if (x != "") printf "%.2f", x / 1e6 }')" M "" "(21.3 M before the third round)"
  row "  one product's change followed (Poll)" "$(metric update-index BenchmarkIndexRebuild follow-ms)" ms "1000" "ms goal (every replica within 1 s)" lower
  # Both indexes in one process, in alternating rounds: the same load.
  row "same, rollouts at 50% on every product" "$(nsus "$(metric update-rollout BenchmarkUpdateCheckRolloutOverhead rollout-ns/check)")" µs/op \
    "$(nsus "$(metric update-rollout BenchmarkUpdateCheckRolloutOverhead plain-ns/check)")" "µs/op no rollouts (≥0.91 ok)" lower
fi

if want delta; then
  bench delta ./bench 'BenchmarkDelta(Saving|ApplyMemory)$' 1x
  header "5b. Delta update, example (a) 1.0.0 → 1.0.1 (adds a route)"
  for img in gzip tar; do
    d=BenchmarkDeltaSaving/$img
    row "$img image: delta bytes" "$(metric delta $d delta-bytes)" B "$(metric delta $d zstd-cli-delta-bytes)" "B zstd --patch-from" lower
    row "$img image: full image bytes" "$(metric delta $d image-bytes)" B "" ""
    row "$img image: saved" "$(metric delta $d saved-%)" % "" "(of the full image)"
    row "$img image: device allocates to apply" "$(metric delta $d apply-MiB)" MiB "" ""
  done
  row "64 MiB image: device allocates to apply" "$(metric delta BenchmarkDeltaApplyMemory apply-MiB)" MiB "" "(plus the source it reads)"
  row "64 MiB image: registry allocates to make it" "$(metric delta BenchmarkDeltaApplyMemory encode-MiB)" MiB "" "(plus both images)"
fi

if want download; then
  bench download ./bench 'Benchmark(Download|ArtifactDownload)$' 1x
  header "5. Downloads of 256 MiB (median of 5, in turns with the baseline)"
  row "released escrow file, afterlife serve, disk" "$(metric download BenchmarkDownload afterlife-MB/s)" MB/s "$(metric download BenchmarkDownload nginx-MB/s)" "MB/s nginx sendfile"
  row "firmware artifact, disk" "$(metric download BenchmarkArtifactDownload/disk afterlife-MB/s)" MB/s "$(metric download BenchmarkArtifactDownload/disk nginx-MB/s)" "MB/s nginx sendfile"
  row "firmware artifact, MinIO (presigned redirect)" "$(metric download BenchmarkArtifactDownload/s3 afterlife-MB/s)" MB/s "$(metric download BenchmarkArtifactDownload/s3 minio-MB/s)" "MB/s GET from MinIO"
fi

if want translog; then
  bench translog ./registry/translog 'BenchmarkLogAt1M$' 1x
  header "8. Transparency log at 1M entries (PostgreSQL: 100k)"
  for dbk in sqlite postgres; do
    n=BenchmarkLogAt1M/$dbk
    row "append rate, $dbk ($(metric translog "$n" entries) entries)" "$(metric translog "$n" appends/s)" entries/s "" "(no baseline: one transaction a batch)"
    row "  inclusion proof bundle, $dbk" "$(metric translog "$n" bundle-bytes)" bytes "" "(tlog-proof: entry, hashes, checkpoint)"
    row "  prove one entry, $dbk" "$(metric translog "$n" prove-µs)" µs "" "(server: hashes read from the database)"
    row "  verify one bundle, $dbk" "$(metric translog "$n" verify-µs)" µs "" "(client: signature and inclusion)"
    row "  consistency proof (half → all), $dbk" "$(metric translog "$n" consistency-bytes)" bytes "" ""
    row "  verify consistency, $dbk" "$(metric translog "$n" consistency-verify-µs)" µs "" ""
  done
fi

if want mirror; then
  bench mirror ./bench 'BenchmarkMirrorPull(Demo|10kReleases)$' 1x
  header "9. Mirror pull (afterlife mirror pull into an empty directory, then again)"
  for m in Demo 10kReleases; do
    n=BenchmarkMirrorPull$m
    row "$m: full pull" "$(metric mirror $n pull-s)" s "" "(no baseline)"
    row "  $m: second pull, nothing new" "$(metric mirror $n repull-s)" s "" "(every file kept by digest)"
    row "  $m: mirror size" "$(metric mirror $n MiB)" MiB "" "$(metric mirror $n files) files"
  done
fi

if want pages; then
  bench pages-fake ./web 'BenchmarkPages$' 200x
  bench pages ./bench 'BenchmarkDemoPages$' 1x
  header "6. Web pages: median render time"
  for p in home search product build vendor admin; do
    row "in-process render, demo fakes: $p" "$(nsms "$(metric pages-fake "BenchmarkPages/$p" ns/op)")" ms "50" "ms target" lower
  done
  for p in home search product; do
    row "afterlife serve --demo, median: $p" "$(metric pages BenchmarkDemoPages "$p-p50-ms")" ms "50" "ms target" lower
  done
fi

if want search; then
  bench search ./bench 'BenchmarkSearch$' 1x
  header "6b. Owner search, 100k products of 500 vendors, 2,000 queries of 8 kinds, one at a time (catalog.Search)"
  for dbk in sqlite postgres; do
    n=BenchmarkSearch/$dbk
    row "p50 latency, $dbk" "$(metric search "$n" p50-ms)" ms "5" "ms goal" lower
    row "p99 latency, $dbk" "$(metric search "$n" p99-ms)" ms "20" "ms goal" lower
    row "  p50 CPU time (process + database), $dbk" "$(metric search "$n" cpu-p50-ms)" ms "5" "ms goal (shared cores do not count)" lower
    row "  p99 CPU time (process + database), $dbk" "$(metric search "$n" cpu-p99-ms)" ms "20" "ms goal (shared cores do not count)" lower
    for k in brand-and-model org-and-family reversed model family-alone device-id typo no-match; do
      row "    CPU p50, $k" "$(metric search "$n" "$k-cpu-p50-ms")" ms "" "(p99 $(metric search "$n" "$k-cpu-p99-ms") ms)"
    done
  done
fi

if want soak; then
  bench soak ./bench 'BenchmarkSoak(Knee)?$' 1x
  header "7. Soak: 10k devices + 200 builders, 2 replicas (PostgreSQL + MinIO) behind nginx"
  s=BenchmarkSoak
  row "device update checks" "$(metric soak $s req/s)" req/s "$(metric soak $s offered-req/s)" "req/s offered"
  row "p50 latency" "$(metric soak $s p50-ms)" ms "$(metric soak $s nginx-p50-ms)" "ms nginx static, same load" lower
  row "p99 latency" "$(metric soak $s p99-ms)" ms "$(metric soak $s nginx-p99-ms)" "ms nginx static, same load" lower
  row "p99 latency, against the target" "$(metric soak $s p99-ms)" ms "100" "ms target" lower
  row "  p99 after the first 10 s" "$(metric soak $s steady-p99-ms)" ms "100" "ms target" lower
  row "errors" "$(metric soak $s errors)" "" "" "(must be 0)"
  row "builder long-polls answered" "$(metric soak $s builder-polls)" "" "" "(200 builders, no jobs)"
  for r in 1 2; do
    row "replica $r peak RSS (VmHWM)" "$(metric soak $s replica$r-hwm-MiB)" MiB "" "(now $(metric soak $s replica$r-rss-MiB) MiB)"
    row "replica $r CPU time in the 30 s" "$(metric soak $s replica$r-cpu-s)" s "" "(user + system)"
  done
  row "CPU time of the load generator" "$(metric soak $s load-cpu-s)" s "" "(10k devices, 200 builders)"
  for r in 1 2; do
    n="BenchmarkSoakKnee/replicas=$r"
    row "knee, $r replica(s): offered rate that held" "$(metric soak "$n" knee-req/s)" req/s "" "(p99 ≤ 250 ms, no errors)"
    broke=$(metric soak "$n" broke-req/s)
    if [ -n "$broke" ] && awk -v b="$broke" 'BEGIN { exit !(b + 0 == 0) }'; then
      row "  the next step, which did not" "none" "" "" "(every step held, up to the last offered)"
    else
      row "  the next step, which did not" "$broke" req/s "" "(p99 $(metric soak "$n" broke-p99-ms) ms, $(metric soak "$n" broke-errors) errors)"
    fi
  done
fi

if want device; then
  bench device ./bench 'BenchmarkDeviceClientSize$' 1x
  header "8. Device client afterlife-device, linux/arm (GOARM=7), -trimpath, stripped"
  d=BenchmarkDeviceClientSize
  row "afterlife-device size" "$(metric device $d device-MiB)" MiB "10" "MiB target" lower
  row "beside the full afterlife binary" "$(metric device $d device-MiB)" MiB "$(metric device $d afterlife-MiB)" "MiB afterlife, linux/arm" lower
  echo "  code by module (KiB of text symbols; the rest of the file is tables and data that grow with it):"
  awk '$1 == "size-by-module" && $3 >= 1 { printf "    %-56s %6d KiB\n", $2, $3 }' "$out/device.txt"
fi

echo
[ "$failed" = 0 ] || { echo "bench: some groups failed (logs above)"; exit 1; }
