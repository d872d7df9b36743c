// Package cli is the command line of the device client: init, update,
// check, run, status and rollback over the registry/device package. Both
// the small afterlife-device binary and `afterlife device` use it. It must
// stay small: it links the device client, cobra and the standard library,
// never server, database or browser code.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/registry/device"
)

// DefaultState is where a device keeps its state unless --state or
// AFTERLIFE_DEVICE_STATE say otherwise.
const DefaultState = "/var/lib/afterlife"

// flags are the settings of every subcommand.
type flags struct {
	registry, state, id, product, channel, installTo string
	acceptCommunity, verbose, force, fromMetadata    bool
	bootloader, healthCheck, reboot                  string
	confirmDeadline                                  time.Duration
}

// legacyState is where earlier versions kept a device's state by default.
func legacyState() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "afterlife", "device")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "afterlife", "device")
	}
	return ""
}

// stateDir resolves --state: the flag, else AFTERLIFE_DEVICE_STATE, else
// DefaultState; a device initialised by an earlier version under the old
// per-user default keeps using that directory until it is moved.
func (f *flags) stateDir(cmd *cobra.Command) string {
	if cmd.Flags().Changed("state") || os.Getenv("AFTERLIFE_DEVICE_STATE") != "" {
		return f.state
	}
	if _, err := os.Stat(filepath.Join(f.state, "config.json")); errors.Is(err, fs.ErrNotExist) {
		if old := legacyState(); old != "" {
			if _, err := os.Stat(filepath.Join(old, "config.json")); err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: using the device state in %s, where earlier versions kept it; "+
					"move it to %s or pass --state %s\n", old, f.state, old)
				return old
			}
		}
	}
	return f.state
}

func (f *flags) config(cmd *cobra.Command) (device.Config, error) {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	cfg := device.Config{
		Registry: f.registry, StateDir: f.stateDir(cmd), InstallDir: f.installTo,
		DeviceID: f.id, Product: f.product, Channel: f.channel, AcceptCommunity: f.acceptCommunity,
		ReplaceRoot: f.force, FromMetadata: f.fromMetadata,
		HealthCheckCommand: f.healthCheck, RebootCommand: f.reboot, ConfirmDeadline: f.confirmDeadline,
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})),
	}
	if cmd.Flags().Changed("bootloader") {
		b, err := device.ParseBootSettings(f.bootloader)
		if err != nil {
			return cfg, err
		}
		cfg.Boot = b
	}
	return cfg, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Command is the device client's command tree, named "device"; the
// afterlife-device binary renames it.
func Command() *cobra.Command {
	f := &flags{}
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Act as a device: trust a registry, keep firmware updated, confirm or roll back",
		Long: `Act as a device (or its owner): pin a registry's TUF root, ask for updates, download
with resume, verify against the signed TUF metadata, install into the inactive slot of
an A/B layout (a, b, current), check the new slot's health, confirm it or roll back, and
report the outcome.

Everything the device keeps is in one directory (--state, default /var/lib/afterlife):
the pinned root and TUF cache, config.json (registry, device id, product, channel,
opt-in, boot settings: given once to init or any command, then remembered), state.json
(last check, pending install) and the slots (unless --install-to says elsewhere).

A device that holds its vendor's update key starts from it: init --vendor-key pins the
root the vendor's handover statement names (docs/handover.md); trust --vendor-key
re-anchors a device that trusted the registry on first use.

The same logic is an importable Go package for device integrators:
github.com/afterlife-oss/afterlife/registry/device.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&f.registry, "registry", os.Getenv("AFTERLIFE_REGISTRY"), "registry URL, remembered (env AFTERLIFE_REGISTRY; config key registry)")
	cmd.PersistentFlags().StringVar(&f.state, "state", envOr("AFTERLIFE_DEVICE_STATE", DefaultState), "the directory where the device keeps everything (env AFTERLIFE_DEVICE_STATE)")
	cmd.PersistentFlags().BoolVarP(&f.verbose, "verbose", "v", false, "say what happens step by step")
	cmd.PersistentFlags().StringVar(&f.installTo, "install-to", "", "A/B install directory, remembered (default STATE/slots; config key install_dir)")
	cmd.AddCommand(initCommand(f), trustCommand(f), updateCommand(f), checkCommand(f), runCommand(f), statusCommand(f), rollbackCommand(f))
	return cmd
}

// bootFlags are the settings of the boot contract, remembered once given.
func bootFlags(cmd *cobra.Command, f *flags) {
	cmd.Flags().StringVar(&f.bootloader, "bootloader", "", "how the bootloader learns of a new slot: none, grubenv[:FILE] or uboot[:PRINTENV,SETENV] (remembered; config key boot)")
	cmd.Flags().StringVar(&f.healthCheck, "health-check", "", "shell command that must exit 0 on the new slot before it is confirmed (remembered; config key health_check)")
	cmd.Flags().DurationVar(&f.confirmDeadline, "confirm-deadline", 0, "roll back a new slot not confirmed this long after its install (default 10m; remembered; config key confirm_deadline)")
	cmd.Flags().StringVar(&f.reboot, "reboot", "", "shell command that reboots into the new slot; the check and confirmation then run at the next start (remembered; config key reboot)")
}

func initCommand(f *flags) *cobra.Command {
	var rootFile, vendorKey string
	var tofu bool
	c := &cobra.Command{
		Use:   "init",
		Short: "Pin the registry's TUF root and store the device's settings",
		Long: `Store the trusted TUF root and the device's settings (registry, id, product, channel,
opt-in, install directory, boot settings) and make a random install id. The device id
names the model, shared by a whole fleet; the install id names this one device: downloads
carry it and the registry answers with a receipt that the install report sends back, so
only installs that really downloaded a release count.

Say which root to trust in one of three ways:
  --vendor-key FILE    the key the device already trusts (its vendor's update-signing key,
                       PEM, or the PEM certificates of the vendor's CA): the product's
                       handover statement is fetched, verified with that key as of its
                       transparency log entry, its log entry is proved under the witness
                       policy of the root it names, no earlier handover may claim this
                       device id, and that root (its sha256 the statement's) is pinned.
                       Needs --product and --id. See docs/handover.md.
  --root FILE          the given root.json is trusted (ship it with the device).
  --trust-on-first-use the registry's first root is fetched and trusted: whoever answers
                       that request decides what this device trusts. Re-anchor such a
                       device later with "trust --vendor-key".

Run again with the same root, init only changes the settings it is given. A different
root is refused while one is pinned: replacing it forgets the metadata versions verified
under it, which protect the device against rollback. --force replaces it on purpose.`,
		Example: `  afterlife-device init --registry http://127.0.0.1:8080 --state ./device-state --product demo-cam \
      --id demo:afterlife-cam --vendor-key vendor-update-key.pub
  afterlife-device init --registry http://127.0.0.1:8080 --state ./device-state --id demo:afterlife-cam --trust-on-first-use
  afterlife-device init --registry https://registry.example --root root.json --id usb:1d6b:0104 \
      --product demo-cam --accept-community-firmware --bootloader uboot --health-check /usr/libexec/fw-healthy
  afterlife-device init --root new-root.json --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var root []byte
			if rootFile != "" {
				b, err := os.ReadFile(rootFile)
				if err != nil {
					return fmt.Errorf("read root: %w", err)
				}
				root = b
			}
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			given := 0
			for _, b := range []bool{rootFile != "", vendorKey != "", tofu} {
				if b {
					given++
				}
			}
			if given != 1 {
				return fmt.Errorf("init: say which root to trust with exactly one of --vendor-key FILE (the key your devices trust), " +
					"--root FILE, or --trust-on-first-use (trust whatever root the registry answers with)")
			}
			if vendorKey != "" {
				key, err := os.ReadFile(vendorKey)
				if err != nil {
					return fmt.Errorf("read vendor key: %w", err)
				}
				a, err := device.InitFromVendor(cmd.Context(), cfg, key, f.acceptCommunity)
				if err != nil {
					return err
				}
				printAnchor(cmd, cfg.StateDir, a)
				return nil
			}
			cfg.TrustOnFirstUse = tofu
			if err := device.Init(cmd.Context(), cfg, root, f.acceptCommunity); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "device state in %s now trusts the registry's root\n", cfg.StateDir)
			return nil
		},
	}
	c.Flags().StringVar(&rootFile, "root", "", "trusted root.json to pin")
	c.Flags().StringVar(&vendorKey, "vendor-key", "", "the vendor's update-signing public key (PEM) or CA certificates: pin the root its handover statement names")
	c.Flags().BoolVar(&tofu, "trust-on-first-use", false, "trust whatever root the registry answers with (whoever answers decides what this device trusts)")
	c.Flags().StringVar(&f.id, "id", "", "device id the device reports, e.g. usb:1d6b:0104 or dt:acme,cam200 (config key device_id)")
	c.Flags().StringVar(&f.product, "product", "", "product this device is (default: learnt from the first install); releases of another product are refused (config key product)")
	c.Flags().BoolVar(&f.force, "force", false, "replace an already pinned, different root (forgets the metadata verified under it)")
	c.Flags().StringVar(&f.channel, "channel", "", "release channel: stable (default) or testing (config key channel)")
	c.Flags().BoolVar(&f.acceptCommunity, "accept-community-firmware", false, "allow community releases to replace vendor firmware (remembered; config key accept_community)")
	bootFlags(c, f)
	return c
}

func updateCommand(f *flags) *cobra.Command {
	var current string
	var retryFailed, noDeltas bool
	c := &cobra.Command{
		Use:   "update",
		Short: "Check for an update, install it into the inactive slot, check it and confirm or roll back",
		Long: `Find the newest release this device may install, download it (resuming an
interrupted download), verify its length and sha256 against the signed TUF metadata,
install it into the inactive slot and switch current to it. The new slot is then on
trial: the bootloader (if one is configured) is told so, the health check runs, and the
slot is confirmed, or the previous slot is made active again. The outcome is reported to
the registry with the receipt the download came with.

Everything comes from the state directory: the registry, device id, channel, opt-in and
install directory given to init (or to an earlier command) are remembered, and the
running version is the one in the active slot.

The registry's update offer is only a hint of where to look: product, version, channel,
the community flag and the minimum version are read from the signed TUF metadata, and a
release of another product or device, an older version (unless signed as a rollback) or
one for another channel is refused. Without an update API (a static mirror of /tuf/) or
with --from-metadata, the release is found in the signed metadata alone; the device must
then know its product (init --product, or an earlier install).

The first switch from vendor firmware to community firmware needs the owner's explicit
opt-in: --accept-community-firmware, given once to init or update and remembered.`,
		Example: `  afterlife-device update
  afterlife-device update --accept-community-firmware
  afterlife-device update --registry https://mirror.example --from-metadata`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			cfg.Progress = progress(cmd.ErrOrStderr())
			cfg.RetryFailed = retryFailed
			cfg.NoDeltas = noDeltas
			res, err := device.Update(cmd.Context(), cfg, current)
			if err != nil {
				return err
			}
			printResult(cmd.OutOrStdout(), cmd.ErrOrStderr(), res)
			return nil
		},
	}
	c.Flags().StringVar(&f.id, "id", "", "device id, remembered (default: the one given to init; config key device_id)")
	c.Flags().StringVar(&f.channel, "channel", "", "release channel, remembered (default: the one given to init; config key channel)")
	c.Flags().StringVar(&current, "current", "", "version the device runs now (default: the version in the active slot, or 0)")
	c.Flags().BoolVar(&f.fromMetadata, "from-metadata", false, "find the release in the signed TUF metadata alone, without asking the update API")
	c.Flags().BoolVar(&f.acceptCommunity, "accept-community-firmware", false, "allow a community release to replace vendor firmware (remembered; config key accept_community)")
	c.Flags().BoolVar(&retryFailed, "retry-failed", false, "install a release even though it failed on this device before")
	c.Flags().BoolVar(&noDeltas, "no-deltas", false, "always download the full image, never a delta (a delta needs memory of about 3× the image)")
	bootFlags(c, f)
	return c
}

func printResult(out, errw io.Writer, res *device.Result) {
	switch {
	case res.Skipped != "":
		fmt.Fprintf(out, "up to date (version %s): %s\n", res.Version, res.Skipped)
	case res.Pending:
		fmt.Fprintf(out, "installed %s %s into slot %s; rebooting into it, it is confirmed at the next start\n", res.Product, res.Version, res.Slot)
	case !res.Updated && res.Yanked != nil:
		fmt.Fprintf(out, "warning: %s, and its channel offers nothing to move to yet\n", res.Yanked.Warning())
	case !res.Updated:
		fmt.Fprintf(out, "up to date (version %s)\n", res.Version)
	default:
		how := ""
		if res.Delta {
			how = " from a delta"
		}
		fmt.Fprintf(out, "installed %s %s (release %s, sha256 %s)%s into slot %s and confirmed it\n",
			res.Product, res.Version, res.ReleaseID, res.SHA256, how, res.Slot)
		if res.Yanked != nil {
			fmt.Fprintf(out, "it replaces a yanked release: %s\n", res.Yanked.Warning())
		}
	}
	if res.ReportErr != nil {
		fmt.Fprintf(errw, "warning: the install report did not reach the registry: %v\n", res.ReportErr)
	}
}

func checkCommand(f *flags) *cobra.Command {
	var current string
	c := &cobra.Command{
		Use:   "check",
		Short: "Ask whether an update exists, without installing anything",
		Long: `Print the registry's update offer. The offer is a hint: update decides on the signed
TUF metadata and may refuse what check shows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			offer, err := device.Check(cmd.Context(), cfg, current)
			if err != nil {
				return err
			}
			if offer == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "up to date")
				return nil
			}
			return printJSON(cmd.OutOrStdout(), offer)
		},
	}
	c.Flags().StringVar(&f.id, "id", "", "device id (default: the one given to init)")
	c.Flags().StringVar(&f.channel, "channel", "", "release channel (default: the one given to init)")
	c.Flags().StringVar(&current, "current", "", "version the device runs now (default: the version in the active slot, or 0)")
	return c
}

func runCommand(f *flags) *cobra.Command {
	o := device.RunOptions{}
	c := &cobra.Command{
		Use:   "run",
		Short: "Keep the device updated: check on an interval, install, health-check, confirm or roll back",
		Long: `Run as a service (deploy/systemd/afterlife-device.service). At start it settles an install
left pending (after a reboot into the new slot: if the bootloader fell back, the failure is
reported; otherwise the health check runs and the slot is confirmed or rolled back). Then it
checks every --interval, spread by --jitter so a fleet does not ask at once; a check that
cannot reach the registry is retried after --retry-min, doubling up to --retry-max, and never
sooner than the registry's Retry-After. A rollback and its reason are reported to the
registry with the download receipt, where they count in the release's report rate and
its review hold.

The boot contract (docs/devices.md): with --bootloader the new slot is marked pending in
the bootloader's environment (U-Boot's upgrade_available/bootcount/bootlimit, or a GRUB
environment block); the bootloader falls back after bootlimit failed boots; the client
confirms the slot once --health-check passes within --confirm-deadline.`,
		Example: `  afterlife-device run --interval 6h --health-check 'systemctl is-system-running --wait'
  afterlife-device run --bootloader uboot --reboot 'systemctl reboot' --health-check /usr/libexec/fw-healthy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.OnCheck = func(res *device.Result, err error) {
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", time.Now().UTC().Format(time.RFC3339), err)
					return
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ", time.Now().UTC().Format(time.RFC3339))
				printResult(cmd.OutOrStdout(), cmd.ErrOrStderr(), res)
			}
			return device.Run(ctx, cfg, o)
		},
	}
	interval, _ := time.ParseDuration(envOr("AFTERLIFE_DEVICE_INTERVAL", "1h"))
	c.Flags().DurationVar(&o.Interval, "interval", interval, "time between checks (env AFTERLIFE_DEVICE_INTERVAL)")
	c.Flags().DurationVar(&o.Jitter, "jitter", 0, "spread of the interval, ± (default a tenth of --interval)")
	c.Flags().DurationVar(&o.RetryMin, "retry-min", 30*time.Second, "first wait after a check that could not reach the registry")
	c.Flags().DurationVar(&o.RetryMax, "retry-max", 0, "longest wait after failed checks (default --interval)")
	c.Flags().BoolVar(&f.acceptCommunity, "accept-community-firmware", false, "allow community releases (remembered; config key accept_community)")
	bootFlags(c, f)
	return c
}

func statusCommand(f *flags) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show product, channel, slots, pinned root, last check, pending install and warnings",
		Long: `Show what the device knows about itself, from its state directory alone: product,
channel, the version in each slot and which is active, the pinned root's version, when the
signed metadata expires, the last check and its answer, an install waiting for confirmation,
and warnings (expired metadata, a community release waiting for the opt-in, a rollback,
what the last check learnt). --json prints the same for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			st, err := device.ReadStatus(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printStatus(w io.Writer, st *device.Status) {
	row := func(k, v string) { fmt.Fprintf(w, "%-13s %s\n", k, v) }
	when := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	row("device", st.DeviceID+" (install id "+st.InstallID+")")
	row("product", orDash(st.Product))
	row("channel", st.Channel)
	row("registry", st.Registry)
	if st.AcceptCommunity {
		row("community", "accepted")
	} else {
		row("community", "not accepted (--accept-community-firmware)")
	}
	for _, s := range st.Slots {
		v := "empty"
		if s.Version != "" {
			v = fmt.Sprintf("%s %s (release %s, installed %s)", s.Product, s.Version, s.ReleaseID, when(s.Installed))
		}
		if s.Active {
			v += "  ← active"
		}
		row("slot "+s.Slot, v)
	}
	row("install dir", st.InstallDir)
	row("bootloader", st.Bootloader)
	row("root", fmt.Sprintf("version %d", st.RootVersion))
	if !st.MetadataExpires.IsZero() {
		row("metadata", "expires "+when(st.MetadataExpires))
	}
	if lc := st.LastCheck; lc != nil {
		row("last check", when(lc.At)+": "+lc.Answer)
	} else {
		row("last check", "never")
	}
	if p := st.Pending; p != nil {
		row("pending", fmt.Sprintf("%s %s in slot %s since %s", p.Product, p.Version, p.Slot, when(p.Since)))
	} else {
		row("pending", "none")
	}
	if li := st.LastInstall; li != nil {
		row("last install", fmt.Sprintf("%s in slot %s %s at %s", li.Version, li.Slot, li.Outcome, when(li.At)))
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rollbackCommand(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback",
		Short: "Make the other slot active again (and tell the bootloader to boot it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			if err := device.Rollback(cmd.Context(), cfg); err != nil {
				return err
			}
			v, err := device.Current(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back; the device now runs %s\n", v)
			return nil
		},
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress shows the download's progress on a terminal and nothing
// elsewhere (logs stay clean).
func progress(w io.Writer) func(done, total int64) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	last := -1
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := int(done * 100 / total)
		if pct == last {
			return
		}
		last = pct
		end := ""
		if done == total {
			end = "\n"
		}
		fmt.Fprintf(f, "\rdownloading %3d%% (%s of %s)%s", pct, mib(done), mib(total), end)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func trustCommand(f *flags) *cobra.Command {
	var vendorKey string
	c := &cobra.Command{
		Use:   "trust",
		Short: "Re-anchor an initialised device on its vendor's handover statement",
		Long: `Verify the product's handover statement as init --vendor-key does (the vendor's
signature as of its transparency log entry, the entry's proof under the witness policy of
the root it names, no earlier handover for this device id, the root's sha256) and pin
that root. The device keeps its install id, settings, state and slots; when the root
changes, the TUF metadata and the log checkpoint accepted under the old root are
forgotten and verified again from the new one.`,
		Example: `  afterlife-device trust --state /var/lib/afterlife --product demo-cam --vendor-key vendor-update-key.pub`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := os.ReadFile(vendorKey)
			if err != nil {
				return fmt.Errorf("read vendor key: %w", err)
			}
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			a, err := device.TrustVendor(cmd.Context(), cfg, key)
			if err != nil {
				return err
			}
			printAnchor(cmd, cfg.StateDir, a)
			return nil
		},
	}
	c.Flags().StringVar(&vendorKey, "vendor-key", "", "the vendor's update-signing public key (PEM) or CA certificates (required)")
	c.Flags().StringVar(&f.product, "product", "", "product this device is (default: the one given to init; config key product)")
	c.Flags().StringVar(&f.id, "id", "", "device id (default: the one given to init; config key device_id)")
	_ = c.MarkFlagRequired("vendor-key")
	return c
}

func printAnchor(cmd *cobra.Command, state string, a device.Anchor) {
	fmt.Fprintf(cmd.OutOrStdout(), "device state in %s now trusts root %s (sha256 %s), handed over by vendor key %s (log entry %d, %s)\n",
		state, a.RootName, a.RootSHA256, a.VendorKey, a.LogEntry, a.LoggedAt.UTC().Format(time.RFC3339))
}
