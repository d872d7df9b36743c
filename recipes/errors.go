package recipes

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// FieldError is one problem in a recipe: where it is and what is wrong.
type FieldError struct {
	File  string // e.g. "afterlife.yaml"
	Line  int    // 1-based; 0 when unknown (JSON specs)
	Field string // path such as "outputs[0].kind"; empty for the whole file
	Msg   string
}

func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one recipe, in file order.
type Errors []FieldError

func (l Errors) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (l Errors) sort() {
	slices.SortStableFunc(l, func(a, b FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.Field, b.Field))
	})
}

// asError gives the list the Invalid kind; errors.As(err, &Errors{}) still
// finds the list.
func (l Errors) asError() error {
	return &errs.Error{Kind: errs.Invalid, Err: l}
}
