package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// A deposit from a browser without script: the form arrives as one
// multipart body (its CSRF token first, then its fields, then the files),
// the server hashes each file while writing it to a temporary directory,
// then opens, fills and seals the deposit as the script would. Without
// script the whole form is bounded by MaxUpload, and each file's kind is
// inferred from its path.

const (
	maxFormFiles      = 1000
	maxFormFieldBytes = 64 << 10
)

// spooled is one file of the form, written to a temporary file.
type spooled struct {
	path, tmp string
	size      int64
	sha256    string
}

func (s *Site) vendorDepositWithoutScript(c *gin.Context) {
	v, _ := c.Get(ctxMultipart)
	mr, ok := v.(*multipart.Reader)
	if !ok {
		s.fail(c, errs.E(errs.Invalid, "the deposit form must start with its csrf field"))
		return
	}
	dir, err := os.MkdirTemp("", "afterlife-web-deposit-")
	if err != nil {
		s.fail(c, errs.Wrap(errs.Internal, err, "web: deposit: temporary directory"))
		return
	}
	defer os.RemoveAll(dir)
	fields, files, err := s.readDepositForm(mr, dir)
	if err == nil {
		err = s.sealFormDeposit(c, fields, files)
	}
	if err != nil {
		if !formError(err) {
			s.fail(c, err)
			return
		}
		s.depositFormPage(c, http.StatusBadRequest, fields["product"], errs.Message(err)+" Nothing was sealed; you can try again.")
	}
}

// readDepositForm reads the form's fields and spools its files into dir.
func (s *Site) readDepositForm(mr *multipart.Reader, dir string) (map[string]string, []spooled, error) {
	fields := map[string]string{}
	var files []spooled
	var total int64
	for parts := 0; ; parts++ {
		if parts > maxFormFiles+64 {
			return fields, nil, errs.E(errs.Invalid, "the form has too many parts")
		}
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, files, nil
		}
		if err != nil {
			return fields, nil, errs.Wrap(errs.Invalid, err, "the form did not arrive whole")
		}
		name := part.FormName()
		if name != "files" && name != "folder" {
			if len(fields) >= 64 {
				return fields, nil, errs.E(errs.Invalid, "the form has too many fields")
			}
			b, err := io.ReadAll(io.LimitReader(part, maxFormFieldBytes+1))
			if err != nil || len(b) > maxFormFieldBytes {
				return fields, nil, errs.E(errs.Invalid, "the field %s is longer than %d bytes", name, maxFormFieldBytes)
			}
			fields[name] = string(b)
			continue
		}
		path := formFilePath(part, name == "folder")
		if path == "" {
			continue // a file input left empty
		}
		if len(files) >= maxFormFiles {
			return fields, nil, errs.E(errs.TooLarge, "more than %d files: deposit them with the command-line client", maxFormFiles)
		}
		f, err := spool(part, dir, len(files), s.opts.MaxUpload-total)
		if err != nil {
			return fields, nil, err
		}
		f.path = path
		total += f.size
		files = append(files, f)
	}
}

// formFilePath is the path a form gives a file: its name, or for a file
// of a chosen folder its path inside that folder (browsers send
// "sunset/src/main.c" for src/main.c of folder sunset). It reads the raw
// header: the standard library keeps only the last element. The escrow's
// manifest rules check the path like any other.
func formFilePath(part *multipart.Part, inFolder bool) string {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	name := strings.ReplaceAll(params["filename"], `\`, "/")
	if inFolder {
		if _, rest, ok := strings.Cut(name, "/"); ok {
			return rest
		}
	}
	return name
}

// spool writes one file into dir, hashing it, refusing more than room bytes.
func spool(r io.Reader, dir string, n int, room int64) (spooled, error) {
	tmp := filepath.Join(dir, fmt.Sprintf("f%05d", n))
	out, err := os.Create(tmp)
	if err != nil {
		return spooled{}, errs.Wrap(errs.Internal, err, "web: deposit: temporary file")
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, room+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return spooled{}, errs.Wrap(errs.Invalid, err, "the upload was cut short")
	}
	if size > room {
		return spooled{}, errs.E(errs.TooLarge, "without JavaScript a deposit is at most %s in all: turn JavaScript on or use the command-line client", humanSize(room))
	}
	return spooled{tmp: tmp, size: size, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// sealFormDeposit opens the deposit with the form's policy and files,
// uploads them from their temporary files and seals it.
func (s *Site) sealFormDeposit(c *gin.Context, fields map[string]string, files []spooled) error {
	if len(files) == 0 {
		return errs.E(errs.Invalid, "choose at least one file or a folder")
	}
	spec := PolicySpec{Kind: fields["policy"], ReleaseAt: fields["release_at"],
		CheckInEvery: fields["checkin_every"], CheckInUnit: fields["checkin_unit"], Grace: fields["grace"], GraceUnit: fields["grace_unit"],
		Quorum: fields["quorum"], Trustees: []string{fields["trustees"]}}
	choice, err := spec.choice()
	if err != nil {
		return err
	}
	nd := NewDeposit{ProductID: fields["product"], Policy: choice, Rights: splitLines(fields["rights"]), Grant: strings.TrimSpace(fields["grant"])}
	for _, f := range files {
		nd.Manifest = append(nd.Manifest, ManifestEntry{Path: f.path, Size: f.size, SHA256: f.sha256}) // the escrow infers each kind
	}
	ctx, who := c.Request.Context(), caller(c)
	id, err := s.deps.Escrow.CreateDeposit(ctx, who, nd)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := s.uploadSpooled(c, id, f); err != nil {
			return err
		}
	}
	r, err := s.deps.Escrow.CommitDeposit(ctx, who, id)
	if err != nil {
		return err
	}
	c.Redirect(http.StatusSeeOther, "/vendor?done=deposit#"+r.DepositID)
	return nil
}

func (s *Site) uploadSpooled(c *gin.Context, id string, f spooled) error {
	in, err := os.Open(f.tmp)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "web: deposit: reopen %s", f.path)
	}
	defer in.Close()
	return s.deps.Escrow.UploadFile(c.Request.Context(), caller(c), id, f.path, f.size, in)
}
