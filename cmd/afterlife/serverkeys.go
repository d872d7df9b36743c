package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/keyring"
	"github.com/afterlife-oss/afterlife/registry/tufdb"
)

// serverKeys are the keys every replica of one database must share. The TUF
// keys are not among them: the root metadata in the database already names
// them (and follows their rotation), and the TUF repository refuses a key
// it does not list.
type serverKeys struct {
	escrow          *age.X25519Identity // sealed deposits are encrypted to it
	receipt         ed25519.PrivateKey  // signs deposit receipts
	downloadReceipt []byte              // MACs download receipts
	session         []byte              // CSRF tokens of the web pages
}

// Where each shared key lives in the key directory.
const (
	receiptKeyFile         = "receipt.key"
	downloadReceiptKeyFile = "download-receipt.key"
	sessionKeyFile         = "session.key"
)

// loadKeys reads the replica's keys and checks them against the
// fingerprints the database recorded when it was initialised. Only a fresh
// database gets new keys, and their fingerprints are recorded before any
// part uses them; against an initialised database a missing or different
// key stops the replica, named, before it writes anything.
func (s *system) loadKeys(ctx context.Context) (*serverKeys, error) {
	ring, err := keyring.Open(ctx, s.db, s.now)
	if err != nil {
		return nil, err
	}
	recorded, err := ring.Recorded(ctx)
	if err != nil {
		return nil, err
	}
	initialised := len(recorded) > 0
	if !initialised {
		// A database from before fingerprints were recorded: its TUF
		// repository says it was initialised.
		if initialised, err = tufInitialised(ctx, s); err != nil {
			return nil, err
		}
	}
	dir := s.cfg.Keys
	k, held, err := readServerKeys(dir, !initialised)
	if err != nil {
		return nil, err
	}
	if len(recorded) == 0 {
		for _, h := range held {
			if h.Fingerprint == "" {
				return nil, errs.E(errs.Invalid, "serve: %s is missing: expected %s; the database is initialised, so no new key is made: give this replica the same keys as the others (docs/deploy.md, \"Keys\")",
					h.Name, filepath.Join(dir, h.File))
			}
		}
		if recorded, err = ring.Record(ctx, held); err != nil {
			return nil, err
		}
		if !initialised {
			s.log.Info("recorded the keys of a new database; every replica needs the same key directory", "keys", dir)
		}
	}
	if err := keyring.Check(recorded, held, dir); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return k, nil
}

func tufInitialised(ctx context.Context, s *system) (bool, error) {
	meta, err := tufdb.New(ctx, s.db, s.now)
	if err != nil {
		return false, err
	}
	_, err = meta.GetMeta(ctx, "timestamp.json")
	if errs.Is(err, errs.NotFound) {
		return false, nil
	}
	return err == nil, err
}

// readServerKeys loads the shared keys from dir, creating missing ones only
// when create is set. A key it may not create and cannot find is left nil,
// and its keyring entry has no fingerprint, for keyring.Check to name.
func readServerKeys(dir string, create bool) (*serverKeys, []keyring.Key, error) {
	var k serverKeys
	var held []keyring.Key
	add := func(name, file string, public []byte) {
		kk := keyring.Key{Name: name, File: file}
		if public != nil {
			kk.Fingerprint = keyring.Fingerprint(public)
		}
		held = append(held, kk)
	}

	var err error
	if create {
		k.escrow, err = escrow.LoadOrCreateIdentity(dir)
	} else {
		k.escrow, err = escrow.LoadIdentity(dir)
	}
	if err != nil && !errs.Is(err, errs.NotFound) {
		return nil, nil, err
	}
	var escrowPub []byte
	if k.escrow != nil {
		escrowPub = []byte(k.escrow.Recipient().String())
	}
	add("escrow identity", escrow.IdentityFile, escrowPub)

	path := filepath.Join(dir, receiptKeyFile)
	if create {
		k.receipt, err = loadOrCreateKey(path)
	} else {
		k.receipt, err = keys.Load(path)
	}
	if err != nil && !errs.Is(err, errs.NotFound) {
		return nil, nil, fmt.Errorf("serve: key %s: %w", path, err)
	}
	var receiptPub []byte
	if k.receipt != nil {
		receiptPub = k.receipt.Public().(ed25519.PublicKey)
	}
	add("receipt key", receiptKeyFile, receiptPub)

	for _, sec := range []struct {
		name, file string
		into       *[]byte
	}{
		{"download-receipt key", downloadReceiptKeyFile, &k.downloadReceipt},
		{"session key", sessionKeyFile, &k.session},
	} {
		path := filepath.Join(dir, sec.file)
		if create {
			*sec.into, err = keyring.LoadOrCreateSecret(path)
		} else {
			*sec.into, err = keyring.LoadSecret(path)
		}
		if err != nil && !errs.Is(err, errs.NotFound) {
			return nil, nil, err
		}
		var fp []byte
		if *sec.into != nil {
			fp = *sec.into
		}
		add(sec.name, sec.file, fp)
	}
	return &k, held, nil
}
