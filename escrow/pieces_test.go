package escrow

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// pieceText is 10 pieces of pieceSize bytes and a short eleventh, each
// byte telling where it is, so a wrong range or order shows.
const pieceSize = 1000

func pieceText() string {
	var b bytes.Buffer
	for i := 0; b.Len() < 10*pieceSize+123; i++ {
		fmt.Fprintf(&b, "%08d|", i)
	}
	return b.String()[:10*pieceSize+123]
}

func TestAFileOfSeveralPiecesIsStoredAsThemAndReadsBackWhole(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.svc = e.service(t, e.db, Options{UploadPiece: pieceSize})
		text := pieceText()
		files := map[string]string{"fw/image.bin": text, "small.txt": "one piece"}
		sealed, _ := e.deposit(t, acme, "demo-cam", "on=2099-01-01", files)
		public, _ := e.deposit(t, acme, "other-cam", "immediate", files)
		srv := serve(t, e.svc)

		t.Run("the file is eleven pieces and no second ciphertext", func(t *testing.T) {
			f, err := e.svc.file(ctx, sealed.ID, "fw/image.bin")
			if err != nil {
				t.Fatal(err)
			}
			ps, err := e.svc.sealedPieces(ctx, sealed.ID, f)
			if err != nil {
				t.Fatal(err)
			}
			if f.Cipher != "" || len(ps) != 11 {
				t.Fatalf("cipher_digest %q, %d pieces; want none and 11", f.Cipher, len(ps))
			}
			for i, p := range ps {
				if p.Seq != i || p.FirstByte != int64(i*pieceSize) {
					t.Fatalf("piece %d is seq %d from byte %d", i, p.Seq, p.FirstByte)
				}
			}
			one, err := e.svc.file(ctx, sealed.ID, "small.txt")
			if err != nil || one.Cipher == "" {
				t.Fatalf("a one-piece file names no cipher_digest: %+v, %v", one, err)
			}
		})
		t.Run("the vendor reads the sealed file back whole", func(t *testing.T) {
			f, err := e.svc.Open(ctx, acme, sealed.ID, "fw/image.bin")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || string(got) != text {
				t.Fatalf("read %d bytes, %v; want the %d of the file", len(got), err, len(text))
			}
		})
		t.Run("the release wrote the whole plaintext of a file of pieces", func(t *testing.T) {
			_, plain, err := e.svc.PublicCopy(ctx, nobody, public.ID, "fw/image.bin")
			if err != nil || plain != blob.Digest("sha256:"+hexSum([]byte(text))) {
				t.Fatalf("public copy %q, %v", plain, err)
			}
		})
		for _, tc := range []struct{ from, to int }{
			{pieceSize - 5, pieceSize + 4},         // across the first boundary
			{3*pieceSize - 1, 5*pieceSize + 1},     // across three pieces
			{10*pieceSize - 2, 10*pieceSize + 122}, // into the short last piece
		} {
			t.Run(fmt.Sprintf("a range of bytes %d-%d across a piece boundary reads the right bytes", tc.from, tc.to), func(t *testing.T) {
				req, _ := http.NewRequest("GET", srv.URL+"/v1/deposits/"+sealed.ID+"/files/fw/image.bin", nil)
				req.Header.Set("Authorization", "Bearer acme")
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", tc.from, tc.to))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 206 || string(got) != text[tc.from:tc.to+1] {
					t.Fatalf("%d %q; want 206 %q", resp.StatusCode, got, text[tc.from:tc.to+1])
				}
			})
		}
	})
}

func TestTheScrubFindsACorruptPieceAndReadsOfItsFileFail(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.svc = e.service(t, e.db, Options{UploadPiece: pieceSize})
		text := pieceText()
		sealed, _ := e.deposit(t, acme, "demo-cam", "on=2099-01-01", map[string]string{"fw/image.bin": text})
		f, err := e.svc.file(ctx, sealed.ID, "fw/image.bin")
		if err != nil {
			t.Fatal(err)
		}
		ps, err := e.svc.sealedPieces(ctx, sealed.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		bad := ps[4].Cipher
		if e.disk != nil {
			damage(t, e, bad)
		} else if err := e.blobs.Delete(ctx, bad); err != nil {
			t.Fatal(err)
		}

		t.Run("a read before the scrub stops short of the file's end", func(t *testing.T) {
			r, err := e.svc.Open(ctx, acme, sealed.ID, "fw/image.bin")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			wantKind(t, err, errs.Conflict)
			if len(got) >= len(text) || string(got) != text[:len(got)] {
				t.Fatalf("read %d bytes before failing; want a true prefix shorter than %d", len(got), len(text))
			}
		})
		t.Run("the scrub names the piece, and only it", func(t *testing.T) {
			rep, err := e.svc.Scrubber("r1").Run(ctx, "test")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Corrupt+rep.Missing != 1 || len(rep.Problems) != 1 || rep.Problems[0].Digest != string(bad) || rep.Problems[0].Role != "cipher" {
				t.Fatalf("scrub = %+v; want the fifth piece %s alone", rep, bad)
			}
		})
		t.Run("after the scrub the file is refused before a byte is read past the good pieces", func(t *testing.T) {
			r, err := e.svc.Open(ctx, acme, sealed.ID, "fw/image.bin")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			wantKind(t, err, errs.Conflict)
			if len(got) > 4*pieceSize {
				t.Fatalf("read %d bytes; the good pieces hold %d", len(got), 4*pieceSize)
			}
		})
	})
}
