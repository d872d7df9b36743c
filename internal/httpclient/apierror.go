package httpclient

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// DecodeError turns an answer of the afterlife API that is not a success
// into an error with a kind, the one way every client reads
// {"error":{"code","message","request_id"}}. A code that names a kind
// (errs.ParseKind) gives that kind; any other answer (a code the client
// does not know, a proxy's page, no body) gets the kind of its status,
// the inverse of errs.Kind.HTTPStatus. The message keeps what the server
// said, the status and the request id, so a user can quote it. call names
// what was asked ("GET /v1/builds/b1", "device: check for updates"); it may
// be empty. DecodeError reads at most 64 KiB of the body and leaves closing
// it to the caller.
func DecodeError(resp *http.Response, call string) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	kind, known := errs.Internal, false
	msg := ""
	if json.Unmarshal(raw, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		kind, known = errs.ParseKind(body.Error.Code)
		msg = body.Error.Message
	} else {
		msg = plainText(raw)
	}
	if !known {
		kind = KindOfStatus(resp.StatusCode)
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	if msg == "" {
		msg = "no message"
	}
	tail := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if id := body.Error.RequestID; id != "" {
		tail += ", request " + id
	} else if id := resp.Header.Get("X-Request-Id"); id != "" {
		tail += ", request " + id
	}
	if call != "" {
		return errs.E(kind, "%s: %s (%s)", call, msg, tail)
	}
	return errs.E(kind, "%s (%s)", msg, tail)
}

// KindOfStatus is the kind of an HTTP status: the inverse of
// errs.Kind.HTTPStatus, except that any 5xx and 429 read as Unavailable
// (the API's own internal errors carry the code "internal"; a bare 500
// comes from a proxy or a server in trouble, not from the request) and
// any other 4xx as Invalid.
func KindOfStatus(status int) errs.Kind {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return errs.Invalid
	case http.StatusUnauthorized:
		return errs.Unauthenticated
	case http.StatusForbidden:
		return errs.Forbidden
	case http.StatusNotFound:
		return errs.NotFound
	case http.StatusConflict:
		return errs.Conflict
	case http.StatusRequestEntityTooLarge:
		return errs.TooLarge
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return errs.Unavailable
	case status >= 400:
		return errs.Invalid
	}
	return errs.Internal
}

// plainText is a short, one-line body that is not HTML, for answers that
// do not come from the API (a proxy's "upstream timed out"); "" otherwise.
func plainText(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if s == "" || !utf8.ValidString(s) || strings.HasPrefix(s, "<") || strings.ContainsAny(s, "\n\r") || len(s) > 200 {
		return ""
	}
	return s
}
