package device

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// update is Update on a resolved client: settle an install left pending,
// find the release, install it into the inactive slot and put it on trial.
func (c *client) update(ctx context.Context, current string) (*Result, error) {
	unlock, err := lockState(c.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Each check reads the metadata afresh (Run keeps one client).
	c.up = nil
	// Another process may have changed the state since this client read it.
	if c.state, err = readState(c.cfg.StateDir); err != nil {
		return nil, err
	}
	if c.state.Pending != nil {
		res, err := c.resume(ctx)
		if err != nil || res.Pending {
			return res, err
		}
	}
	id, err := c.identity(current)
	if err != nil {
		c.recordCheck("not checked", "", err)
		return nil, err
	}
	cand, err := c.find(ctx, id)
	if err != nil {
		c.recordCheck("check failed", "", err)
		return nil, err
	}
	yanked, err := c.installedYank(id)
	if err != nil {
		c.recordCheck("check failed", "", err)
		return nil, err
	}
	if yanked != nil {
		c.checkWarnings = append(c.checkWarnings, yanked.Warning())
	}
	if cand == nil {
		if yanked != nil {
			c.log.Warn("device: the release this device runs was yanked, and its channel offers nothing to move to", "version", id.current, "reason", yanked.Reason)
			c.recordCheck("yanked ("+id.current+"), nothing to move to", "", nil)
		} else {
			c.log.Info("device is up to date", "version", id.current)
			c.recordCheck("up to date ("+id.current+")", "", nil)
		}
		return &Result{Version: id.current, Yanked: yanked}, nil
	}
	if yanked != nil {
		c.log.Warn("device: the release this device runs was yanked; moving on", "version", id.current, "reason", yanked.Reason, "to", cand.meta.Version)
	}
	sum := hex.EncodeToString(cand.info.Hashes["sha256"])
	if f := c.failedHere(sum); f != nil && !c.cfg.RetryFailed {
		answer := fmt.Sprintf("%s %s is offered but failed on this device before (%s); not installed again until a newer release "+
			"(update --retry-failed installs it anyway)", cand.meta.Product, cand.meta.Version, f.Reason)
		c.log.Warn("device: "+answer, "version", cand.meta.Version)
		c.recordCheck(answer, cand.meta.Version, nil)
		return &Result{Version: id.current, Skipped: answer}, nil
	}
	c.recordCheck("installing "+cand.meta.Product+" "+cand.meta.Version, cand.meta.Version, nil)
	prev, err := activeSlot(c.cfg.InstallDir)
	if err != nil {
		return nil, err
	}
	res, err := c.install(ctx, cand)
	if err != nil {
		rep := Report{ReleaseID: cand.meta.ReleaseID, Version: cand.meta.Version, Outcome: OutcomeFailure, Reason: err.Error()}
		if repErr := c.report(ctx, rep); repErr != nil {
			c.log.Warn("device: could not report the failure", "err", repErr)
		}
		return nil, err
	}
	if prev != "" {
		if _, err := readRelease(c.cfg.InstallDir, prev); err != nil {
			prev = ""
		}
	}
	res, err = c.trial(ctx, res, prev)
	if res != nil {
		res.Yanked = yanked
	}
	switch {
	case err != nil && res != nil && res.RolledBack:
		c.recordCheck("installed "+cand.meta.Product+" "+cand.meta.Version+"; rolled back: "+res.Reason, cand.meta.Version, nil)
	case err != nil:
		c.recordCheck("installing "+cand.meta.Product+" "+cand.meta.Version+" failed", cand.meta.Version, err)
	case res.Pending:
		c.recordCheck("installed "+cand.meta.Product+" "+cand.meta.Version+"; rebooting into it", cand.meta.Version, nil)
	default:
		c.recordCheck("installed "+cand.meta.Product+" "+cand.meta.Version+" and confirmed it", cand.meta.Version, nil)
	}
	return res, err
}

// trial records the installed slot as pending, tells the bootloader, and
// either reboots into it or checks it at once.
func (c *client) trial(ctx context.Context, res *Result, prev string) (*Result, error) {
	p := &PendingInstall{Product: res.Product, Version: res.Version, ReleaseID: res.ReleaseID, SHA256: res.SHA256,
		Slot: res.Slot, Previous: prev, Receipt: c.receipt, Since: c.now().UTC()}
	c.state.Pending = p
	if err := c.saveState(); err != nil {
		return nil, err
	}
	if c.boot != nil {
		if err := c.boot.MarkPending(ctx, p.Slot, p.Previous); err != nil {
			return res, c.rollBack(ctx, res, "the bootloader could not mark slot "+p.Slot+" pending: "+err.Error())
		}
	}
	if c.st.RebootCommand != "" {
		p.Rebooting = true
		if err := c.saveState(); err != nil {
			return nil, err
		}
		c.log.Info("device: rebooting into the new slot", "slot", p.Slot, "version", p.Version)
		if err := runShell(ctx, c.st.RebootCommand, nil); err != nil {
			return res, c.rollBack(ctx, res, "the reboot command failed: "+err.Error())
		}
		res.Pending = true
		return res, nil
	}
	return c.settle(ctx, res)
}

// resume settles an install left pending by an earlier run: the device
// rebooted into it, or the client stopped during its health check.
func (c *client) resume(ctx context.Context) (*Result, error) {
	p := c.state.Pending
	res := &Result{Updated: true, Product: p.Product, Version: p.Version, ReleaseID: p.ReleaseID, SHA256: p.SHA256, Slot: p.Slot}
	if c.boot != nil {
		slot, _, err := c.boot.Booted(ctx)
		if err != nil {
			return nil, fmt.Errorf("device: ask the bootloader which slot booted: %w", err)
		}
		if slot != "" && slot != p.Slot {
			// The bootloader gave up on the new slot: it did not come up
			// healthy in bootlimit boots.
			return res, c.rolledBackBy(ctx, res, fmt.Sprintf("slot %s (%s %s) did not boot: the bootloader fell back to slot %s after failed boots",
				p.Slot, p.Product, p.Version, slot))
		}
	}
	if p.Rebooting {
		p.Rebooting = false
		if err := c.saveState(); err != nil {
			return nil, err
		}
	}
	return c.settle(ctx, res)
}

// settle runs the health check of the slot on trial and confirms it, or
// rolls back when the check fails or the deadline passes.
func (c *client) settle(ctx context.Context, res *Result) (*Result, error) {
	p := c.state.Pending
	deadline := p.Since.Add(c.cfg.ConfirmDeadline)
	if !c.now().Before(deadline) {
		return res, c.rollBack(ctx, res, fmt.Sprintf("not confirmed within %s of the install", c.cfg.ConfirmDeadline))
	}
	if check := c.healthCheck(p); check != nil {
		hctx, cancel := context.WithTimeout(ctx, deadline.Sub(c.now()))
		err := check(hctx)
		timedOut := hctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err() // stopped: the install stays pending for the next run
		}
		switch {
		case timedOut:
			return res, c.rollBack(ctx, res, fmt.Sprintf("the health check did not pass within %s of the install", c.cfg.ConfirmDeadline))
		case err != nil:
			return res, c.rollBack(ctx, res, "the health check failed: "+err.Error())
		}
	}
	if c.boot != nil {
		if err := c.boot.Confirm(ctx); err != nil {
			return res, c.rollBack(ctx, res, "the bootloader could not confirm slot "+p.Slot+": "+err.Error())
		}
	}
	c.state.Pending = nil
	c.state.LastInstall = &InstallRecord{Version: p.Version, Slot: p.Slot, Outcome: installConfirmed, At: c.now().UTC()}
	if err := c.saveState(); err != nil {
		return nil, err
	}
	c.log.Info("device: new slot confirmed", "slot", p.Slot, "version", p.Version)
	c.receipt = p.Receipt
	if err := c.report(ctx, Report{ReleaseID: p.ReleaseID, Version: p.Version, Outcome: OutcomeSuccess}); err != nil {
		c.log.Warn("device: installed but could not report it", "err", err)
		res.ReportErr = err
	}
	return res, nil
}

// rollBack makes the previous slot active again (in the A/B directory and
// for the bootloader), remembers that the release failed here, and
// reports the failure with the download's receipt.
func (c *client) rollBack(ctx context.Context, res *Result, reason string) error {
	p := c.state.Pending
	if p.Previous != "" {
		if c.boot != nil {
			if err := c.boot.Fallback(ctx); err != nil {
				c.log.Warn("device: the bootloader could not fall back", "err", err)
			}
		}
		if err := switchTo(c.cfg.InstallDir, p.Previous); err != nil {
			return err
		}
	}
	return c.rolledBackBy(ctx, res, reason)
}

// rolledBackBy records a rollback (done by rollBack or by the bootloader)
// and reports it.
func (c *client) rolledBackBy(ctx context.Context, res *Result, reason string) error {
	p := c.state.Pending
	if p.Previous != "" {
		if active, err := activeSlot(c.cfg.InstallDir); err == nil && active != p.Previous {
			if err := switchTo(c.cfg.InstallDir, p.Previous); err != nil {
				return err
			}
		}
	}
	c.markFailed(p, reason)
	c.state.Pending = nil
	c.state.LastInstall = &InstallRecord{Version: p.Version, Slot: p.Slot, Outcome: installRolledBack, Reason: reason, At: c.now().UTC()}
	if err := c.saveState(); err != nil {
		return err
	}
	res.Updated, res.RolledBack, res.Reason = false, true, reason
	c.receipt = p.Receipt
	if err := c.report(ctx, Report{ReleaseID: p.ReleaseID, Version: p.Version, Outcome: OutcomeFailure, Reason: reason, RolledBack: true}); err != nil {
		c.log.Warn("device: could not report the rollback", "err", err)
		res.ReportErr = err
	}
	back := "slot " + p.Previous
	if p.Previous == "" {
		back = "nothing: no earlier release is installed"
	}
	c.log.Warn("device: rolled back", "version", p.Version, "slot", p.Slot, "reason", reason)
	return errs.E(errs.Internal, "device: %s %s in slot %s: %s; rolled back to %s", p.Product, p.Version, p.Slot, reason, back)
}

// healthCheck is the check to run on the slot on trial, nil for none.
func (c *client) healthCheck(p *PendingInstall) func(context.Context) error {
	if c.cfg.HealthCheck != nil {
		return c.cfg.HealthCheck
	}
	if c.st.HealthCheckCommand == "" {
		return nil
	}
	env := []string{"AFTERLIFE_VERSION=" + p.Version, "AFTERLIFE_SLOT=" + p.Slot, "AFTERLIFE_INSTALL_DIR=" + c.cfg.InstallDir}
	return func(ctx context.Context) error { return runShell(ctx, c.st.HealthCheckCommand, env) }
}

// runShell runs a configured command with /bin/sh -c; its error carries
// the end of what the command printed.
func runShell(ctx context.Context, command string, env []string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	if len(msg) > 200 {
		msg = "…" + msg[len(msg)-200:]
	}
	if msg != "" {
		return fmt.Errorf("%q: %w: %s", command, err, msg)
	}
	return fmt.Errorf("%q: %w", command, err)
}

// RunOptions say how often Run checks.
type RunOptions struct {
	// Interval between checks (default 1h), spread by ±Jitter (default a
	// tenth of Interval) so a fleet does not ask at the same second.
	Interval, Jitter time.Duration
	// After a failed check Run waits RetryMin, doubling up to RetryMax
	// (defaults 30s and Interval), and never less than the registry's
	// Retry-After.
	RetryMin, RetryMax time.Duration
	// OnCheck, when set, hears the outcome of every check.
	OnCheck func(*Result, error)
}

func (o *RunOptions) defaults() {
	if o.Interval <= 0 {
		o.Interval = time.Hour
	}
	if o.Jitter < 0 || o.Jitter > o.Interval {
		o.Jitter = 0
	} else if o.Jitter == 0 {
		o.Jitter = o.Interval / 10
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 30 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = o.Interval
	}
	o.RetryMin = min(o.RetryMin, o.RetryMax)
}

// Run keeps the device updated until ctx ends: it settles an install left
// pending (after a reboot), then checks on an interval with jitter,
// installs what it finds, runs the health check and confirms or rolls
// back. A check that fails to reach the registry is retried with
// exponential backoff, never sooner than the registry's Retry-After.
// Run returns nil when ctx ends and after it asked for a reboot.
func Run(ctx context.Context, cfg Config, o RunOptions) error {
	o.defaults()
	c, err := newClient(cfg, true)
	if err != nil {
		return err
	}
	c.log.Info("device: running", "interval", o.Interval, "jitter", o.Jitter, "bootloader", c.st.Boot.String())
	failures := 0
	for {
		c.retryAfter.reset()
		res, err := c.update(ctx, "")
		if ctx.Err() != nil {
			return nil
		}
		if o.OnCheck != nil {
			o.OnCheck(res, err)
		}
		if err == nil && res.Pending {
			return nil // rebooting into the new slot
		}
		if errs.Is(err, errs.Unavailable) {
			failures++
			c.log.Warn("device: the registry did not answer; backing off", "failures", failures, "err", err)
		} else {
			failures = 0
			if err != nil {
				c.log.Warn("device: update failed", "err", err)
			}
		}
		wait := nextWait(o, failures, c.retryAfter.get(), rand.Float64())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// nextWait is how long Run waits before the next check: the interval
// spread by jitter (r in [0,1) picks where), or after failures an
// exponential backoff with jitter; never less than retryAfter.
func nextWait(o RunOptions, failures int, retryAfter time.Duration, r float64) time.Duration {
	var d time.Duration
	if failures == 0 {
		d = o.Interval + time.Duration((2*r-1)*float64(o.Jitter))
	} else {
		b := float64(o.RetryMin) * math.Pow(2, float64(min(failures-1, 30)))
		b = min(b, float64(o.RetryMax))
		d = time.Duration(b/2 + r*b/2)
	}
	return max(d, retryAfter, time.Millisecond)
}

// retryAfterRecorder remembers the longest Retry-After the registry
// answered with, so Run can wait at least that long after a check that
// the retrying client gave up on.
type retryAfterRecorder struct {
	mu  sync.Mutex
	max time.Duration
}

func (r *retryAfterRecorder) wrap(hc *http.Client) *http.Client {
	cp := *hc
	base := cp.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err == nil && (resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) {
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
				r.mu.Lock()
				r.max = max(r.max, time.Duration(s)*time.Second)
				r.mu.Unlock()
			}
		}
		return resp, err
	})
	return &cp
}

func (r *retryAfterRecorder) reset() { r.mu.Lock(); r.max = 0; r.mu.Unlock() }
func (r *retryAfterRecorder) get() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.max
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
