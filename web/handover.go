package web

import "time"

// Handover is a vendor's handover statement that took effect, as the
// product page states it: "Signing authority handed over by vendor key
// <VendorKey> to this registry's root <RootSHA256> on <At> (log entry N)".
type Handover struct {
	VendorKey  string // the vendor key's fingerprint, "sha256:<hex>"
	RootSHA256 string // the root it names
	At         time.Time
	LogEntry   int64  // its transparency log entry; -1 while not logged
	LogURL     string // the entry, when logged
	URL        string // the statement itself
}
