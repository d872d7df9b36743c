package completeness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// cpioOf writes a "newc" archive.
func cpioOf(files map[string]string) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	entry := func(name string, mode int, data string) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name)
		b.WriteByte(0)
		pad()
		b.WriteString(data)
		pad()
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	entry("etc", 0o040755, "")
	for _, n := range names {
		entry(n, 0o100644, files[n])
	}
	entry("TRAILER!!!", 0, "")
	return b.Bytes()
}

func unpack(t *testing.T, name string, b []byte) []Member {
	t.Helper()
	ms, err := Unpack(name, b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestACompleteRebuildScoresHundredAndAMissingFileIsNamed(t *testing.T) {
	shipped := map[string]string{"firmware.bin": "image bytes ....", "etc/calibration.dat": "cal", "etc/version": "2.4.1\n"}
	for _, tc := range []struct {
		name    string
		rebuilt map[string]string
		percent int
		missing []string
		differs []string
		extra   []string
	}{
		{"the same files score 100 %", shipped, 100, nil, nil, nil},
		{"a file left out of the deposit is missing, and the score drops by its bytes",
			map[string]string{"firmware.bin": "image bytes ....", "etc/version": "2.4.1\n"}, 88, []string{"image.tar/etc/calibration.dat"}, nil, nil},
		{"a file rebuilt differently differs",
			map[string]string{"firmware.bin": "image bytes !!!!", "etc/calibration.dat": "cal", "etc/version": "2.4.1\n"}, 36, nil, []string{"image.tar/firmware.bin"}, nil},
		{"a file only the rebuild has is extra and costs nothing",
			map[string]string{"firmware.bin": "image bytes ....", "etc/calibration.dat": "cal", "etc/version": "2.4.1\n", "debug.map": "x"}, 100, nil, nil, []string{"image.tar/debug.map"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Compare(unpack(t, "image.tar", tarOf(t, shipped)), unpack(t, "image.tar", tarOf(t, tc.rebuilt)))
			if r.Percent() != tc.percent || !slices.Equal(r.Of(Missing), tc.missing) || !slices.Equal(r.Of(Differs), tc.differs) || !slices.Equal(r.Of(Extra), tc.extra) {
				t.Fatalf("percent %d, missing %v, differs %v, extra %v\n%s", r.Percent(), r.Of(Missing), r.Of(Differs), r.Of(Extra), r.Text())
			}
		})
	}
}

func TestAnAlmostCompleteRebuildNeverRoundsUpToHundred(t *testing.T) {
	big := string(bytes.Repeat([]byte("a"), 100_000))
	r := Compare([]Member{{"a", []byte(big)}, {"b", []byte("x")}}, []Member{{"a", []byte(big)}})
	if r.Percent() != 99 || r.Sentence() != "Deposit completeness: 99 % of the shipped image rebuilt bit-for-bit from the deposit" {
		t.Fatalf("%d: %s", r.Percent(), r.Sentence())
	}
}

func TestArchivesAreUnpackedWhereverTheyNest(t *testing.T) {
	inner := cpioOf(map[string]string{"etc/passwd": "root:x:0:0\n", "bin/app": "app"})
	outer := gz(tarOf(t, map[string]string{"boot/kernel": "kernel", "rootfs.cpio": string(inner)}))
	ms := unpack(t, "image.tar.gz", outer)
	var paths []string
	for _, m := range ms {
		paths = append(paths, m.Path)
	}
	want := []string{"image.tar/boot/kernel", "image.tar/rootfs.cpio/bin/app", "image.tar/rootfs.cpio/etc/passwd"}
	if !slices.Equal(paths, want) {
		t.Fatalf("members %v, want %v", paths, want)
	}
}

func TestAnELFFileIsComparedSectionBySection(t *testing.T) {
	orig, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	ro := f.Section(".rodata")
	if ro == nil || ro.Size == 0 {
		t.Fatal("/bin/true has no .rodata")
	}
	changed := bytes.Clone(orig)
	changed[ro.Offset] ^= 0xff
	r := Compare(unpack(t, "true", orig), unpack(t, "true", changed))
	if got := r.Of(Differs); !slices.Equal(got, []string{"true#.rodata"}) || r.Counts.Identical < 5 {
		t.Fatalf("differs %v, %d identical sections\n%s", got, r.Counts.Identical, r.Text())
	}
	if p := r.Percent(); p == 100 || p < 50 {
		t.Fatalf("percent %d", p)
	}
}

func TestHostileArchivesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		kind errs.Kind
	}{
		{"a tar member whose name hides itself with a bidirectional control is refused", tarOf(t, map[string]string{"a/\u202eexe.txt": "x"}), DefaultLimits, errs.Invalid},
		{"a gzip bomb stops at the byte limit", gz(bytes.Repeat([]byte{0}, 1<<20)), Limits{MaxBytes: 1 << 10, MaxMembers: 10, MaxDepth: 4}, errs.TooLarge},
		{"too many members are refused", tarOf(t, map[string]string{"a": "1", "b": "2", "c": "3"}), Limits{MaxBytes: 1 << 20, MaxMembers: 2, MaxDepth: 4}, errs.TooLarge},
		{"a cut cpio archive is refused", cpioOf(map[string]string{"a": "1234"})[:120], DefaultLimits, errs.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unpack("image", tc.data, tc.lim)
			if !errs.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
		})
	}
}
