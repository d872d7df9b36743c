// Package jcat writes and reads Jcat files, the signature container fwupd
// reads beside remote metadata (firmware.xml.zst.jcat): gzip-compressed
// JSON holding items, each with blobs (checksums, detached signatures).
// It follows libjcat's format: JcatVersionMajor 0, JcatVersionMinor 1,
// Items[{Id, Blobs[{Kind, Flags, Timestamp, Data}]}], UTF-8 data stored as
// text. Signatures are PKCS#7 (CMS) detached signatures over the item's
// bytes, made with github.com/smallstep/pkcs7; nothing here is home-made
// cryptography.
package jcat

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Kind is what a blob holds (libjcat's JcatBlobKind).
type Kind int

// The kinds this package writes.
const (
	SHA256 Kind = 1
	PKCS7  Kind = 3
)

// FlagUTF8 marks a blob whose data is text (libjcat's JCAT_BLOB_FLAG_IS_UTF8);
// other data is base64.
const FlagUTF8 = 1

// Blob is one checksum or signature of an item.
type Blob struct {
	Kind        Kind   `json:"Kind"`
	Flags       int    `json:"Flags"`
	AppstreamID string `json:"AppstreamId,omitempty"`
	Timestamp   int64  `json:"Timestamp,omitempty"` // unix seconds
	Data        string `json:"Data"`
}

// Item is the blobs of one file, named by its base name.
type Item struct {
	ID    string `json:"Id"`
	Blobs []Blob `json:"Blobs"`
}

// File is a whole Jcat file.
type File struct {
	Major int    `json:"JcatVersionMajor"`
	Minor int    `json:"JcatVersionMinor"`
	Items []Item `json:"Items"`
}

// New is an empty file of the version libjcat writes.
func New() File { return File{Major: 0, Minor: 1, Items: []Item{}} }

// Marshal is the file as fwupd downloads it: gzip-compressed JSON, with a
// header that carries no name or time, so equal files give equal bytes.
func (f File) Marshal() ([]byte, error) {
	js, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("jcat: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(js); err != nil {
		return nil, fmt.Errorf("jcat: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("jcat: %w", err)
	}
	return buf.Bytes(), nil
}

// maxSize bounds what Parse inflates.
const maxSize = 16 << 20

// Parse reads a Jcat file.
func Parse(b []byte) (File, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return File{}, errs.Wrap(errs.Invalid, err, "jcat: not gzip")
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxSize+1))
	if err != nil {
		return File{}, errs.Wrap(errs.Invalid, err, "jcat: inflate")
	}
	if len(js) > maxSize {
		return File{}, errs.E(errs.TooLarge, "jcat: more than %d bytes inflated", maxSize)
	}
	var f File
	if err := json.Unmarshal(js, &f); err != nil {
		return File{}, errs.Wrap(errs.Invalid, err, "jcat: JSON")
	}
	return f, nil
}

// Checksum is the SHA-256 blob of data.
func Checksum(data []byte, at time.Time) Blob {
	sum := sha256.Sum256(data)
	return Blob{Kind: SHA256, Flags: FlagUTF8, Timestamp: at.Unix(), Data: hex.EncodeToString(sum[:])}
}

// Sign is a PKCS#7 detached signature of data by key, whose certificate
// cert is embedded so a verifier needs only the issuing CA. The digest is
// SHA-256; the signed attributes carry the signing time as the library
// reads it from the system clock, the blob's Timestamp is at.
func Sign(data []byte, cert *x509.Certificate, key crypto.Signer, at time.Time) (Blob, error) {
	sd, err := pkcs7.NewSignedData(data)
	if err != nil {
		return Blob{}, fmt.Errorf("jcat: sign: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		return Blob{}, fmt.Errorf("jcat: sign: %w", err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return Blob{}, fmt.Errorf("jcat: sign: %w", err)
	}
	return Blob{Kind: PKCS7, Flags: FlagUTF8, Timestamp: at.Unix(), Data: string(pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: der}))}, nil
}

// Verify checks blob against data: a checksum must match; a signature
// must verify, by a certificate that chains to one of roots at the
// signing time. It is what a mirror checks offline; fwupd checks the same
// with libjcat.
func Verify(data []byte, b Blob, roots *x509.CertPool) error {
	switch b.Kind {
	case SHA256:
		sum := sha256.Sum256(data)
		if b.Data != hex.EncodeToString(sum[:]) {
			return errs.E(errs.Invalid, "jcat: sha256 %s does not match the data", b.Data)
		}
		return nil
	case PKCS7:
		blk, _ := pem.Decode([]byte(b.Data))
		if blk == nil || blk.Type != "PKCS7" {
			return errs.E(errs.Invalid, "jcat: pkcs7 blob is not PEM")
		}
		p7, err := pkcs7.Parse(blk.Bytes)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "jcat: pkcs7")
		}
		p7.Content = data
		if err := p7.VerifyWithChain(roots); err != nil {
			return errs.Wrap(errs.Invalid, err, "jcat: pkcs7 signature")
		}
		return nil
	}
	return errs.E(errs.Invalid, "jcat: blob kind %d is not one this registry writes", b.Kind)
}
