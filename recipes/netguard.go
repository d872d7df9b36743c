package recipes

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// A server fetches URLs that anyone with a maintainer token names, so a
// fetch must not become a way to reach the server's own network: the
// loopback interface, private and link-local ranges, cloud metadata
// addresses. The guard below checks every address a fetch connects to,
// after name resolution and for every redirect, before the connection is
// made, and answers every refusal with the same error, so that nothing
// about the internal answer leaks through the error either.

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// refusedURL is the one error for a URL the guard will not fetch. It names
// neither the URL (which may carry credentials) nor what it resolved to.
func refusedURL() error {
	return errs.E(errs.Invalid, "recipes: repository URL refused: only https:// URLs without credentials, of hosts on public addresses, are fetched")
}

// netPolicy is one fetch's rules, carried to the shared HTTP transport in
// the request context.
type netPolicy struct {
	allowLocal bool
	resolver   Resolver
	// trusted is treated as a public address reachable over http (tests
	// only: they may not send traffic outside 127.0.0.0/8).
	trusted netip.AddrPort
	refused atomic.Bool // set by the guard whenever it refuses
}

type policyKey struct{}

func withPolicy(ctx context.Context, p *netPolicy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// policyOf gives the strictest rules to a request that carries none.
func policyOf(ctx context.Context) *netPolicy {
	if p, ok := ctx.Value(policyKey{}).(*netPolicy); ok {
		return p
	}
	return &netPolicy{resolver: net.DefaultResolver}
}

var errRefused = errors.New("recipes: address refused")

func (p *netPolicy) refuse() error {
	p.refused.Store(true)
	return errRefused
}

// checkURL refuses, before anything is resolved, a URL the fetch must not
// follow: a scheme other than https (http too with allowLocal), userinfo,
// no host.
func (p *netPolicy) checkURL(u *url.URL) error {
	if u == nil || u.Host == "" || u.Opaque != "" || u.User != nil || strings.Contains(u.Host, "@") {
		return p.refuse()
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.allowLocal && !p.isTrustedHost(u.Host) {
			return p.refuse()
		}
	default:
		return p.refuse()
	}
	return nil
}

func (p *netPolicy) isTrustedHost(hostport string) bool {
	ap, err := netip.ParseAddrPort(hostport)
	return err == nil && p.trusted.IsValid() && ap == p.trusted
}

func (p *netPolicy) allowed(ap netip.AddrPort) bool {
	return p.allowLocal || (p.trusted.IsValid() && ap == p.trusted) || PublicAddr(ap.Addr())
}

// nonPublic are ranges that IsGlobalUnicast and IsPrivate do not cover
// but that a fetch must not reach, or that embed an IPv4 address.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: reaches any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// PublicAddr reports whether a fetch may connect to a: not loopback,
// private, link-local, unique-local, unspecified, multicast, carrier-grade
// NAT, reserved, or an IPv6 form that embeds an IPv4 address.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// dial resolves addr, refuses it unless every address it resolves to is
// allowed, and connects to those addresses only, never resolving again
// (a second answer could differ: DNS rebinding). The dialer's Control hook
// checks the address once more right before connect.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p := policyOf(ctx)
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, p.refuse()
	}
	port, err := net.LookupPort(network, portStr)
	if err != nil {
		return nil, p.refuse()
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := p.resolver.LookupIPAddr(ctx, host)
		if err != nil {
			// Refused like a private answer: otherwise the error would
			// tell which internal names resolve.
			return nil, p.refuse()
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok && ip.Zone == "" {
				addrs = append(addrs, a)
			} else {
				return nil, p.refuse()
			}
		}
	}
	if len(addrs) == 0 {
		return nil, p.refuse()
	}
	for _, a := range addrs {
		if !p.allowed(netip.AddrPortFrom(a, uint16(port))) {
			return nil, p.refuse()
		}
	}
	d := net.Dialer{Timeout: 30 * time.Second, Control: p.control}
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if p.refused.Load() {
			return nil, errRefused
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// control runs after the socket exists and before it connects.
func (p *netPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !p.allowed(ap) {
		return p.refuse()
	}
	return nil
}

// checkRedirect applies the URL rules to every hop; the hop's addresses
// go through dial like the first request's.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("recipes: too many redirects")
	}
	return policyOf(req.Context()).checkURL(req.URL)
}

var installGuardOnce sync.Once

// installGuard makes go-git fetch http and https through the guard. go-git
// v5 chooses a transport from a process-wide table only; installing the
// guarded one there, once, also covers any other go-git use in the
// process, and a request without a policy in its context gets the strictest
// one.
func installGuard() {
	installGuardOnce.Do(func() {
		tr := &http.Transport{
			Proxy:                 nil, // a proxy would connect on our behalf, past the guard
			DialContext:           dial,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute,
			// A pooled connection was checked under the policy of the fetch
			// that opened it, which may allow what another's does not.
			DisableKeepAlives: true,
		}
		t := githttp.NewClient(&http.Client{Transport: tr, CheckRedirect: checkRedirect})
		client.InstallProtocol("https", t)
		client.InstallProtocol("http", t)
	})
}
