package escrow

import (
	"context"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestAReplicaWithAnotherEscrowKeyNeverMarksASealedFileCorrupt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sealed, _ := e.deposit(t, acme, "other-cam", "on=2099-01-01", map[string]string{"fw/image.bin": "sealed firmware image bytes"})

		other, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		right := e.identity
		e.identity = other
		wrong := e.service(t, e.db, Options{})
		e.identity = right

		t.Run("the read fails as an internal error naming this replica's key", func(t *testing.T) {
			_, err := wrong.Open(ctx, acme, sealed.ID, "fw/image.bin")
			wantKind(t, err, errs.Internal)
			if err == nil || !strings.Contains(err.Error(), other.Recipient().String()) || !strings.Contains(err.Error(), IdentityFile) {
				t.Fatalf("error %v does not name the key %s", err, other.Recipient())
			}
		})
		t.Run("no blob is marked corrupt or missing", func(t *testing.T) {
			problems, err := e.svc.BlobProblems(ctx)
			if err != nil || len(problems) != 0 {
				t.Fatalf("problems = %+v, %v", problems, err)
			}
		})
		t.Run("the replica with the right key still reads the file", func(t *testing.T) {
			f, err := e.svc.Open(ctx, acme, sealed.ID, "fw/image.bin")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || string(got) != "sealed firmware image bytes" {
				t.Fatalf("read = %q, %v", got, err)
			}
		})
	})
}
