package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTheDeviceBinaryLinksNoServerCode keeps the device binary small and
// free of what only a server needs, whatever the import table says.
func TestTheDeviceBinaryLinksNoServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; its output looks wrong", len(deps))
	}
	never := []string{
		"github.com/gin-gonic/gin", "github.com/jackc/pgx/v5", "modernc.org/sqlite", "github.com/pressly/goose/v3",
		"github.com/chromedp/chromedp", "github.com/minio/minio-go/v7",
		"github.com/afterlife-oss/afterlife/internal/db", "github.com/afterlife-oss/afterlife/internal/httpapi",
	}
	for _, d := range deps {
		for _, n := range never {
			if d == n || strings.HasPrefix(d, n+"/") {
				t.Errorf("afterlife-device links %s", d)
			}
		}
	}
	for _, want := range []string{"github.com/afterlife-oss/afterlife/registry/device", "github.com/theupdateframework/go-tuf/v2/metadata/updater"} {
		if !strings.Contains("\n"+string(out), "\n"+want+"\n") {
			t.Errorf("afterlife-device does not link %s; is this the device binary?", want)
		}
	}
}
