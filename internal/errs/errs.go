// Package errs gives errors a kind, so that callers test what went wrong
// without reading error text, and so that one table (HTTPStatus) turns kinds
// into HTTP statuses at the edge. It must not know about any part or about
// HTTP frameworks.
package errs

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error. The zero Kind is Internal.
type Kind uint8

const (
	Internal        Kind = iota // a bug or an unexpected failure
	NotFound                    // the thing does not exist, or the caller may not know it exists
	Invalid                     // the request is malformed or breaks a rule
	Conflict                    // the request clashes with the current state
	Unauthenticated             // no or bad credentials
	Forbidden                   // credentials fine, permission missing
	TooLarge                    // a size limit was exceeded
	Unavailable                 // try again later (overload, a backend is down)
)

var kindNames = [...]string{
	Internal:        "internal",
	NotFound:        "not_found",
	Invalid:         "invalid",
	Conflict:        "conflict",
	Unauthenticated: "unauthenticated",
	Forbidden:       "forbidden",
	TooLarge:        "too_large",
	Unavailable:     "unavailable",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind reads a kind back from its name (the code of an API error);
// ok is false for a name that is no kind.
func ParseKind(name string) (k Kind, ok bool) {
	for k := range Kind(len(kindNames)) {
		if kindNames[k] == name {
			return k, true
		}
	}
	return Internal, false
}

// HTTPStatus is the one place where a kind becomes an HTTP status.
func (k Kind) HTTPStatus() int {
	switch k {
	case NotFound:
		return http.StatusNotFound
	case Invalid:
		return http.StatusBadRequest
	case Conflict:
		return http.StatusConflict
	case Unauthenticated:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is an error with a kind. Message is safe to show to the caller;
// Err is the wrapped cause and may hold details that are not.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

func (e *Error) Error() string {
	switch {
	case e.Message != "" && e.Err != nil:
		return e.Message + ": " + e.Err.Error()
	case e.Message != "":
		return e.Message
	case e.Err != nil:
		return e.Err.Error()
	default:
		return e.Kind.String()
	}
}

func (e *Error) Unwrap() error { return e.Err }

// E returns an error of kind k with a caller-facing message.
func E(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns err with kind k and a caller-facing message; nil stays nil.
func Wrap(k Kind, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf reports the kind of the outermost *Error in err's chain, and
// Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err has kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Message is the caller-facing text of err: the message of its outermost
// *Error, or a generic text for internal errors, whose details stay in logs.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		if e.Message != "" {
			return e.Message
		}
		return e.Error()
	}
	return "internal error"
}
