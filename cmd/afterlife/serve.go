package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/auth/authhttp"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/health"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/metrics"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the afterlife server (API, web, registry, escrow, build coordinator)",
		Long: `Run the afterlife server.

With no settings it keeps everything under ./data: the SQLite database, the blob
directory and the generated keys, and it runs two local builder agents, so one
machine is a whole afterlife. On first start it writes an admin token to
DATA/admin.token (mode 0600), valid for --bootstrap-token-ttl (24h): make
lasting admin tokens with it. A database gets one such token, written by the
replica that initialised it; later replicas write none.

To scale out, point several replicas at one PostgreSQL database and one
S3-compatible bucket:
  afterlife serve --database postgres://afterlife@db:5432/afterlife \
                  --blobs 's3://afterlife?endpoint=minio:9000&secure=false'
(S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.)
Create the bucket first with afterlife admin blobs init. Keys are generated
only for a fresh database, which records their fingerprints; every replica
needs a copy of the same key directory (--keys), and one whose keys are
missing or different refuses to start, naming the key.

Downloads stream through the replica unless the s3:// URL says where clients
reach the store (&public_url=https://blobs.example.org): then they redirect to a
short-lived URL presigned for that address.

Every setting can be given as a flag, as an AFTERLIFE_* environment variable, or
in a YAML file (--config, with "version: 1"); flags win over the environment,
which wins over the file.`,
	}
	return withServeSettings(cmd, func(cmd *cobra.Command, cfg config.Serve) error { return runServe(cmd.Context(), cfg) })
}

// withServeSettings gives cmd the settings of serve (flags, AFTERLIFE_*
// variables, --config) and runs run with them.
func withServeSettings(cmd *cobra.Command, run func(*cobra.Command, config.Serve) error) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.LoadServe(cmd.Flags(), os.Getenv)
		if err != nil {
			return err
		}
		return run(cmd, cfg)
	}
	config.AddServeFlags(cmd.Flags())
	return cmd
}

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit (serve also applies them at start)",
		Long: `Apply every part's database migrations and exit. serve does this at start too;
run it on its own before rolling out new replicas (the Kubernetes Job does).
Against a fresh database it also makes and records the keys (see serve); it
makes no admin token: the first serve does.`,
	}
	return withServeSettings(cmd, func(cmd *cobra.Command, cfg config.Serve) error {
		sys, err := openSystem(cmd.Context(), cfg, newLogger(cfg))
		if err != nil {
			return err
		}
		defer sys.close()
		if err := sys.migrateOnly(cmd.Context()); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
		return nil
	})
}

func newLogger(cfg config.Serve) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// openBlobs opens the configured blob store: a directory under the data dir
// by default, or an S3 bucket.
func openBlobs(ctx context.Context, cfg config.Serve) (blob.Store, error) {
	if cfg.Blobs == "" {
		return fsstore.New(filepath.Join(cfg.Data, "blobs"))
	}
	s3cfg, err := s3store.ParseURL(cfg.Blobs)
	if err != nil {
		return nil, err
	}
	if cfg.Retention > 0 && s3cfg.Retention == 0 {
		s3cfg.Retention = cfg.Retention
	}
	// Large uploads whose digest comes last (sealed deposit files) wait
	// here while they are hashed, instead of being copied within the
	// bucket afterwards.
	s3cfg.SpoolDir = filepath.Join(cfg.Data, "spool")
	return s3store.New(ctx, s3cfg)
}

func runServe(ctx context.Context, cfg config.Serve) error {
	log := newLogger(cfg)
	sys, err := openSystem(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer sys.close()
	if err := sys.wire(ctx); err != nil {
		return err
	}
	// serve, not migrate: the token belongs in a replica's data dir.
	if err := sys.auth.WriteBootstrapToken(ctx, filepath.Join(cfg.Data, "admin.token"), cfg.BootstrapTokenTTL, log); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           sys.api, // fast routes first, then the gin engine
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No whole-request read or write timeouts: deposits and downloads
		// stream for as long as they make progress; long polls end on
		// their own deadlines.
		MaxHeaderBytes: 64 << 10,
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	if cfg.Demo {
		sys.background = append(sys.background, func(ctx context.Context) {
			if err := sys.seedDemo(ctx); err != nil && ctx.Err() == nil {
				log.Error("demo seeding failed", "err", err)
			}
		})
	}
	done := sys.startBackground(bg)

	if cfg.MetricsAddr != "" {
		stopMetrics, err := metrics.Listen(cfg.MetricsAddr, sys.metricsHTTP, log)
		if err != nil {
			stopBG()
			<-done
			return err
		}
		defer stopMetrics()
	}
	if cfg.ProfileAddr != "" {
		_, stopProfiles, err := metrics.ListenProfiles(cfg.ProfileAddr, log)
		if err != nil {
			stopBG()
			<-done
			return err
		}
		defer stopProfiles()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("afterlife serving", "addr", ln.Addr().String(), "url", cfg.PublicURL, "data", cfg.Data,
		"database", sys.db.Dialect.String(), "blobs", blobKind(cfg), "version", binaryVersion())

	select {
	case err := <-serveErr:
		stopBG()
		<-done
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "grace", cfg.ShutdownGrace)
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	stopBG() // local builders give their jobs back; loops stop
	// Builders' long polls would hold the replica until their 30 s wait
	// or the grace ran out: they end now with no job, and the builders
	// poll again through the load balancer, reaching a replica that stays.
	sys.parts.coord.Drain()
	err = srv.Shutdown(shutCtx)
	<-done
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func blobKind(cfg config.Serve) string {
	if cfg.Blobs == "" {
		return "disk"
	}
	return "s3"
}

// system holds what every part is built on.
type system struct {
	cfg     config.Serve
	log     *slog.Logger
	db      *db.DB
	blobs   blob.Store
	auth    *auth.Service
	api     *httpapi.API
	metrics *prometheus.Registry
	// metricsHTTP serves metrics, on --addr or on --metrics-addr.
	metricsHTTP http.Handler
	now         func() time.Time

	keys       *serverKeys
	parts      *parts
	background []func(ctx context.Context)
	closers    []func()
}

func openSystem(ctx context.Context, cfg config.Serve, log *slog.Logger) (*system, error) {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data dir %s: %w", cfg.Data, err)
	}
	for _, dir := range []string{cfg.Keys, filepath.Join(cfg.Data, "tmp")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("serve: %s: %w", dir, err)
		}
	}
	d, err := db.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return nil, err
	}
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		d.Close()
		return nil, err
	}
	sys := &system{cfg: cfg, log: log, db: d, blobs: blobs, now: time.Now, metrics: prometheus.NewRegistry()}
	sys.closers = append(sys.closers, func() { d.Close() })
	sys.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sys.auth, err = auth.New(ctx, d, sys.now)
	if err != nil {
		sys.close()
		return nil, err
	}
	return sys, nil
}

func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// migrateOnly builds every part, which applies its migrations, without
// serving.
func (s *system) migrateOnly(ctx context.Context) error {
	return s.wire(ctx)
}

// wire builds the parts and mounts their routes. Reading it shows the whole
// system: which part needs what, and through which adapter.
func (s *system) wire(ctx context.Context) error {
	// Keys first: a replica whose keys do not match the database stops
	// here, before it writes anything.
	var err error
	if s.keys, err = s.loadKeys(ctx); err != nil {
		return err
	}
	if s.metricsHTTP, err = metrics.Handler(s.metrics, s.cfg.MetricsTokenFile); err != nil {
		return err
	}
	var ownAuth []string
	if s.cfg.MetricsTokenFile != "" {
		ownAuth = []string{"/metrics"}
	}
	s.api = httpapi.New(httpapi.Options{
		Auth: s.auth, Logger: s.log, Title: "afterlife API", Version: binaryVersion(), Metrics: s.metrics,
		QuietPaths:   []string{"/v1/devices/updates", "/healthz", "/readyz", "/metrics"},
		OwnAuthPaths: ownAuth,
	})
	root, v1 := s.api.Root(), s.api.V1()
	s.registerHealth(root)
	authhttp.Register(v1, s.auth)
	if err := s.wireParts(ctx, root, v1); err != nil {
		return err
	}
	s.api.ServeOpenAPI(v1)
	return nil
}

func (s *system) registerHealth(root *httpapi.Router) {
	root.GET("/healthz", httpapi.Op{Public: true, Summary: "Liveness: the process is up", Tag: "meta"}, func(c *gin.Context) error {
		return httpapi.JSON(c, http.StatusOK, gin.H{"status": "ok"})
	})
	root.GET("/readyz", httpapi.Op{Public: true, Summary: "Readiness, dependency by dependency: 200 while update checks and TUF metadata can be served (the database answers), even with the blob store away; 503 otherwise", Tag: "meta"}, func(c *gin.Context) error {
		rep := health.Run(c, 2*time.Second, s.readinessChecks())
		if !rep.Ready() {
			c.Header("Retry-After", "2")
			return httpapi.JSON(c, http.StatusServiceUnavailable, rep)
		}
		return httpapi.JSON(c, http.StatusOK, rep)
	})
	if s.cfg.MetricsAddr != "" {
		return // served on its own listener (runServe)
	}
	summary := "Prometheus metrics (docs/metrics.md)"
	if s.cfg.MetricsTokenFile != "" {
		summary += "; needs the bearer token of --metrics-token-file"
	}
	root.GET("/metrics", httpapi.Op{Public: true, Summary: summary, Tag: "meta"}, func(c *gin.Context) error {
		s.metricsHTTP.ServeHTTP(c.Writer, c.Request)
		return nil
	})
}

// readinessChecks are the dependencies /readyz reports. Update checks are
// answered from memory and TUF metadata from the database, so only the
// database decides readiness: a replica that cannot reach the blob store
// still serves devices, and taking every replica out of the load balancer
// for a blob outage would turn it into a total outage.
func (s *system) readinessChecks() []health.Check {
	return []health.Check{
		{Name: "database", Needed: true, Without: "TUF metadata and every API call but update checks", Ping: s.db.PingContext},
		{Name: "blobs", Without: "downloads, deposits, recipe submissions and builders' uploads (answered 503 with Retry-After)", Ping: s.blobs.Ping},
	}
}

// startBackground runs every part's periodic work until ctx ends; the
// returned channel closes when all of it has stopped.
func (s *system) startBackground(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	finished := make(chan struct{}, len(s.background))
	for _, run := range s.background {
		go func() {
			defer func() { finished <- struct{}{} }()
			run(ctx)
		}()
	}
	go func() {
		for range s.background {
			<-finished
		}
		close(done)
	}()
	return done
}
