package device_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// image is a pseudo-random firmware image of n bytes; edited returns a
// copy changed in a few places, as the next version of a firmware is.
func image(n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func edited(b []byte) []byte {
	out := bytes.Clone(b)
	for _, at := range []int{len(b) / 7, len(b) / 3, len(b) / 2, len(b) - 100} {
		copy(out[at:], "a change in the next version")
	}
	return append(out, []byte("and a new feature at the end")...)
}

func zstdCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("zstd", append([]string{"-q", "-f"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("zstd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestDeltasInteroperateWithTheZstdCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"a small image", 64 << 10},
		{"an image larger than the zstd command's default window (2 MiB)", 3 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			oldImg := image(tc.size, uint64(tc.size))
			newImg := edited(oldImg)
			oldPath, newPath := filepath.Join(dir, "old.bin"), filepath.Join(dir, "new.bin")
			os.WriteFile(oldPath, oldImg, 0o644)
			os.WriteFile(newPath, newImg, 0o644)
			var delta bytes.Buffer
			if err := device.EncodeDelta(&delta, oldImg, newImg); err != nil {
				t.Fatal(err)
			}

			t.Run("zstd -d --patch-from applies what EncodeDelta writes", func(t *testing.T) {
				if delta.Len() > len(newImg)/50 {
					t.Fatalf("delta of %d bytes for an image of %d with four small changes", delta.Len(), len(newImg))
				}
				dpath, out := filepath.Join(dir, "ours.zst"), filepath.Join(dir, "ours.out")
				os.WriteFile(dpath, delta.Bytes(), 0o644)
				zstdCmd(t, "-d", "--long=31", "--patch-from="+oldPath, dpath, "-o", out)
				if got, _ := os.ReadFile(out); !bytes.Equal(got, newImg) {
					t.Fatal("zstd -d --patch-from did not rebuild the new image")
				}
			})
			t.Run("ApplyDelta applies what zstd --patch-from writes", func(t *testing.T) {
				dpath := filepath.Join(dir, "theirs.zst")
				zstdCmd(t, "--patch-from="+oldPath, newPath, "-o", dpath)
				f, err := os.Open(dpath)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				var got bytes.Buffer
				if err := device.ApplyDelta(&got, f, oldImg, int64(len(newImg))); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), newImg) {
					t.Fatal("ApplyDelta did not rebuild the new image")
				}
			})
			t.Run("a delta applied to another source fails its checksum", func(t *testing.T) {
				var got bytes.Buffer
				err := device.ApplyDelta(&got, bytes.NewReader(delta.Bytes()), image(tc.size, 7), int64(len(newImg)))
				if err == nil && bytes.Equal(got.Bytes(), newImg) {
					t.Fatal("a wrong source rebuilt the image")
				}
			})
			t.Run("a delta that yields more than the signed length is refused", func(t *testing.T) {
				if err := device.ApplyDelta(&bytes.Buffer{}, bytes.NewReader(delta.Bytes()), oldImg, int64(len(newImg)-1)); !errs.Is(err, errs.Invalid) {
					t.Fatalf("err = %v, want invalid", err)
				}
			})
		})
	}
}

func TestDeltaWindowCoversTheImagesUpTo512MiB(t *testing.T) {
	for _, tc := range []struct {
		src, dst int64
		want     int
	}{
		{100, 200, 1 << 10},
		{3 << 20, 5 << 20, 8 << 20},
		{4 << 20, 4 << 20, 8 << 20},
		{4 << 20, 5 << 20, 16 << 20},
		{300 << 20, 200 << 20, 512 << 20},
		{512 << 20, 512 << 20, 512 << 20},
	} {
		if got := device.DeltaWindow(tc.src, tc.dst); got != tc.want {
			t.Errorf("DeltaWindow(%d, %d) = %d, want %d", tc.src, tc.dst, got, tc.want)
		}
	}
}

func TestBucketIsStableAndSpreadsInstallsEvenly(t *testing.T) {
	const n = 20_000
	counts := make([]int, 100)
	for range n {
		b := make([]byte, 16)
		rand.Read(b)
		id := hex.EncodeToString(b)
		if device.Bucket(id) != device.Bucket(id) {
			t.Fatal("the bucket of an install id changed")
		}
		counts[device.Bucket(id)]++
	}
	// Each bucket holds n/100 ± 5 standard deviations of the binomial.
	mean, sd := float64(n)/100, math.Sqrt(float64(n)*0.01*0.99)
	for b, c := range counts {
		if math.Abs(float64(c)-mean) > 5*sd {
			t.Errorf("bucket %d holds %d of %d install ids, want %.0f ± %.0f", b, c, n, mean, 5*sd)
		}
	}
}

func TestRolloutStagesAreComputedFromTheSignedSchedule(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	stages := []device.RolloutStage{{Percent: 1, DwellSeconds: 3600}, {Percent: 10, DwellSeconds: 7200}, {Percent: 100}}
	for _, tc := range []struct {
		name          string
		state         string
		pausedAt, now time.Time
		stage, pct    int
	}{
		{"the first stage runs for its dwell time", device.RolloutActive, time.Time{}, start.Add(59 * time.Minute), 1, 1},
		{"the second begins when the first ends", device.RolloutActive, time.Time{}, start.Add(time.Hour), 2, 10},
		{"the last stage lasts for ever", device.RolloutActive, time.Time{}, start.Add(300 * 24 * time.Hour), 3, 100},
		{"a clock before the start is in the first stage", device.RolloutActive, time.Time{}, start.Add(-time.Hour), 1, 1},
		{"a paused rollout stays at the stage it was paused in", device.RolloutPaused, start.Add(90 * time.Minute), start.Add(30 * 24 * time.Hour), 2, 10},
		{"a halted rollout reaches no more devices", device.RolloutHalted, start.Add(90 * time.Minute), start.Add(30 * 24 * time.Hour), 2, 0},
		{"an aborted rollout reaches no more devices", device.RolloutAborted, start.Add(10 * time.Minute), start.Add(30 * 24 * time.Hour), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &device.SignedRollout{State: tc.state, Start: start, PausedAt: tc.pausedAt, Stages: stages}
			if stage, pct := r.StageAt(tc.now); stage != tc.stage || pct != tc.pct {
				t.Fatalf("StageAt = stage %d, %d%%; want stage %d, %d%%", stage, pct, tc.stage, tc.pct)
			}
		})
	}
	t.Run("a device that sent no bucket is reached only at 100 percent", func(t *testing.T) {
		r := &device.SignedRollout{State: device.RolloutActive, Start: start, Stages: stages}
		if r.Reaches(device.NoBucket, start.Add(2*time.Hour)) || !r.Reaches(device.NoBucket, start.Add(3*time.Hour)) {
			t.Fatal("NoBucket is reached before 100% or not at 100%")
		}
		var none *device.SignedRollout
		if !none.Reaches(device.NoBucket, start) {
			t.Fatal("a release without a rollout does not reach every device")
		}
	})
}

func TestAYankedReleaseIsLeftOnlyThroughItsSignedRollback(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.publish("1.1.0", firmware("1.1.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := device.Update(ctx, cfg, ""); err != nil || res.Version != "1.1.0" {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := reg.publishWith("1.1.0", firmware("1.1.0"), release{yanked: "corrupts the settings"}); err != nil {
		t.Fatal(err)
	}
	t.Run("the yank is read from the signed metadata", func(t *testing.T) {
		st, err := device.InstalledYank(ctx, cfg)
		if err != nil || !st.Yanked || st.Reason != "corrupts the settings" {
			t.Fatalf("%+v %v", st, err)
		}
	})
	t.Run("a permission signed for another yanked version allows no downgrade", func(t *testing.T) {
		if _, err := reg.publishWith("1.0.0", firmware("1.0.0"), release{fromYanked: []device.YankedFrom{{Version: "1.2.0", Reason: "x"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := device.Update(ctx, cfg, ""); !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), "allows no downgrade") {
			t.Fatalf("err = %v, want a refused downgrade", err)
		}
	})
	t.Run("the permission from the yanked version it runs allows going back", func(t *testing.T) {
		if _, err := reg.publishWith("1.0.0", firmware("1.0.0"), release{fromYanked: []device.YankedFrom{{Version: "1.1.0", Reason: "corrupts the settings"}}}); err != nil {
			t.Fatal(err)
		}
		res, err := device.Update(ctx, cfg, "")
		if err != nil || res.Version != "1.0.0" || res.Yanked == nil || res.Yanked.Reason != "corrupts the settings" {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("a yanked target is never installed", func(t *testing.T) {
		other := deviceConfig(t, reg)
		initDevice(t, reg, other)
		if _, err := reg.publishWith("1.1.0", firmware("1.1.0"), release{yanked: "corrupts the settings"}); err != nil {
			t.Fatal(err)
		}
		if _, err := device.Update(ctx, other, ""); !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), "yanked") {
			t.Fatalf("err = %v, want the yanked target refused", err)
		}
	})
}
