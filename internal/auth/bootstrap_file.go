package auth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// WriteBootstrapToken makes the database's bootstrap admin token when the
// database has none, and writes its secret to path (mode 0600): only the
// replica that made it holds it. Other replicas, and restarts, make none.
func (s *Service) WriteBootstrapToken(ctx context.Context, path string, ttl time.Duration, log *slog.Logger) error {
	secret, t, created, err := s.Bootstrap(ctx, ttl)
	if err != nil {
		return fmt.Errorf("auth: bootstrap token: %w", err)
	}
	if !created {
		if _, err := os.Stat(path); err != nil {
			log.Info("this database already has its bootstrap admin token, so none is written here; an admin makes more with: afterlife admin token create --role admin --name NAME",
				"token_file", path)
		}
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("auth: write the bootstrap token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("auth: write the bootstrap token: %w", err)
	}
	expires := "never"
	if !t.Expires.IsZero() {
		expires = t.Expires.Format(time.RFC3339)
	}
	log.Info("wrote the bootstrap admin token; make lasting admin tokens with it (afterlife admin token create --role admin) before it expires",
		"token_file", path, "expires", expires)
	return nil
}
