package registry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"regexp"

	"github.com/gin-gonic/gin"
)

// Download receipts. A device id names a model shared by a whole fleet, so
// it cannot tell one device's report from an invented one. Each device
// makes a random install id at init and sends it with its download
// (header InstallIDHeader); the answer carries a receipt (header
// ReceiptHeader): an HMAC-SHA256, under a key only the registry holds, of
// the release and the install id. A report counts only with a valid
// receipt for the release it reports on.
const (
	InstallIDHeader = "Afterlife-Install-Id"
	ReceiptHeader   = "Afterlife-Receipt"
)

var installIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidInstallID reports whether s is an install id: 32 lowercase hex
// digits (16 random bytes).
func ValidInstallID(s string) bool { return installIDPattern.MatchString(s) }

func (s *Service) receipt(releaseID, installID string) string {
	m := hmac.New(sha256.New, s.o.ReceiptKey)
	m.Write([]byte("afterlife download receipt v1\x00" + releaseID + "\x00" + installID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validReceipt checks a receipt in constant time.
func (s *Service) validReceipt(releaseID, installID, receipt string) bool {
	got, err := base64.RawURLEncoding.DecodeString(receipt)
	if err != nil || !ValidInstallID(installID) {
		return false
	}
	want, _ := base64.RawURLEncoding.DecodeString(s.receipt(releaseID, installID))
	return hmac.Equal(got, want)
}

// giveReceipt adds a receipt for release to a download answer when the
// request names an install id.
func (s *Service) giveReceipt(c *gin.Context, releaseID string) {
	if id := c.GetHeader(InstallIDHeader); ValidInstallID(id) && releaseID != "" {
		c.Header(ReceiptHeader, s.receipt(releaseID, id))
	}
}

// sourceNetwork is the network a client address belongs to for counting:
// its /24 for IPv4, its /48 for IPv6. One network's reports count at most
// Options.ReportsPerNetwork times per release and outcome.
func sourceNetwork(addr string) string {
	ip := net.ParseIP(addr)
	switch {
	case ip == nil:
		return addr
	case ip.To4() != nil:
		return (&net.IPNet{IP: ip.To4().Mask(net.CIDRMask(24, 32)), Mask: net.CIDRMask(24, 32)}).String()
	default:
		return (&net.IPNet{IP: ip.Mask(net.CIDRMask(48, 128)), Mask: net.CIDRMask(48, 128)}).String()
	}
}
