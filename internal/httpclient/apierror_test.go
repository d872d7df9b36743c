package httpclient

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestEveryClientReadsAPIErrorsOneWay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		header  string // X-Request-Id
		body    string
		call    string
		kind    errs.Kind
		message string // the whole error text
	}{
		{"the code of an API error gives its kind", 409, "", `{"error":{"code":"conflict","message":"device id usb:1 is held by acme-cam","request_id":"req_1"}}`,
			"POST /v1/products", errs.Conflict, "POST /v1/products: device id usb:1 is held by acme-cam (HTTP 409, request req_1)"},
		{"the code wins over the status", 400, "", `{"error":{"code":"too_large","message":"blob is 9 bytes, limit 8"}}`,
			"", errs.TooLarge, "blob is 9 bytes, limit 8 (HTTP 400)"},
		{"an internal error stays internal", 500, "", `{"error":{"code":"internal","message":"internal error","request_id":"req_2"}}`,
			"GET /v1/builds", errs.Internal, "GET /v1/builds: internal error (HTTP 500, request req_2)"},
		{"a code that is no kind falls back to the status", 429, "", `{"error":{"code":"rate_limited","message":"too many install reports"}}`,
			"device: send report", errs.Unavailable, "device: send report: too many install reports (HTTP 429)"},
		{"method not allowed is invalid", 405, "", `{"error":{"code":"method_not_allowed","message":"PUT is not allowed on /v1/builds"}}`,
			"", errs.Invalid, "PUT is not allowed on /v1/builds (HTTP 405)"},
		{"the request id header is used when the body has none", 404, "req_3", `{"error":{"code":"not_found","message":"no build b1"}}`,
			"", errs.NotFound, "no build b1 (HTTP 404, request req_3)"},
		{"a proxy's plain text is kept", 502, "", "upstream connect error\n",
			"GET /v1/jobs/next", errs.Unavailable, "GET /v1/jobs/next: upstream connect error (HTTP 502)"},
		{"a proxy's HTML page is replaced by the status text", 504, "", "<html><body>Gateway Timeout</body></html>",
			"", errs.Unavailable, "Gateway Timeout (HTTP 504)"},
		{"a bare 500 is unavailable", 500, "", "",
			"", errs.Unavailable, "Internal Server Error (HTTP 500)"},
		{"an empty 401 is unauthenticated", 401, "", "", "", errs.Unauthenticated, "Unauthorized (HTTP 401)"},
		{"an empty 403 is forbidden", 403, "", "", "", errs.Forbidden, "Forbidden (HTTP 403)"},
		{"an empty 404 is not found", 404, "", "", "", errs.NotFound, "Not Found (HTTP 404)"},
		{"an empty 413 is too large", 413, "", "", "", errs.TooLarge, "Request Entity Too Large (HTTP 413)"},
		{"an empty 422 is invalid", 422, "", "", "", errs.Invalid, "Unprocessable Entity (HTTP 422)"},
		{"another 4xx is invalid", 410, "", "", "", errs.Invalid, "Gone (HTTP 410)"},
		{"a redirect nobody followed is internal", 302, "", "", "", errs.Internal, "Found (HTTP 302)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tc.header != "" {
				rec.Header().Set("X-Request-Id", tc.header)
			}
			rec.WriteHeader(tc.status)
			rec.WriteString(tc.body)
			resp := rec.Result()
			err := DecodeError(resp, tc.call)
			if !errs.Is(err, tc.kind) {
				t.Errorf("kind %v, want %v (%v)", errs.KindOf(err), tc.kind, err)
			}
			if err.Error() != tc.message {
				t.Errorf("message\n got %q\nwant %q", err.Error(), tc.message)
			}
			if tc.kind != errs.Internal && !strings.HasPrefix(tc.message, errs.Message(err)) {
				t.Errorf("errs.Message %q is not the caller-facing text", errs.Message(err))
			}
		})
	}
}

func TestADecodedErrorReadsAtMost64KiB(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusBadRequest)
	rec.WriteString(`{"error":{"code":"invalid","message":"` + strings.Repeat("x", 128<<10) + `"}}`)
	err := DecodeError(rec.Result(), "")
	if !errs.Is(err, errs.Invalid) || len(err.Error()) > 64<<10 {
		t.Fatalf("kind %v, %d bytes", errs.KindOf(err), len(err.Error()))
	}
}
