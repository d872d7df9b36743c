// Every deployment target documents itself, backups included.

package deploy

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestEveryTargetHasAReadmeThatCoversBackups(t *testing.T) {
	for _, dir := range []string{"systemd", "compose", "k8s"} {
		t.Run(dir+"/README.md says how to start, back up and restore", func(t *testing.T) {
			text := string(mustRead(t, filepath.Join(dir, "README.md")))
			for _, want := range []string{"pg_dump", "pg_restore", "mc mirror", "root.key", "## Back up", "## Restore"} {
				if !strings.Contains(text, want) {
					t.Errorf("no %q", want)
				}
			}
		})
	}
	text := string(mustRead(t, "systemd/README.md"))
	for _, want := range []string{"afterlife admin backup", "afterlife admin restore"} {
		if !strings.Contains(text, want) {
			t.Errorf("systemd/README.md does not explain %q for the embedded default", want)
		}
	}
}
