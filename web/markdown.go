package web

import (
	"bytes"
	"html/template"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// markdown renders text someone else wrote (a recipe's install notes) as
// HTML a page may embed: goldmark turns CommonMark into HTML, dropping raw
// HTML, and bluemonday's user-content policy then keeps only harmless
// elements and attributes (no scripts, styles, event handlers or
// javascript: links; links get rel="nofollow noopener"). Text goldmark
// cannot render is shown escaped.
type markdown struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
}

func newMarkdown() *markdown {
	p := bluemonday.UGCPolicy()
	p.RequireNoFollowOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(false)
	return &markdown{
		md:     goldmark.New(goldmark.WithExtensions(extension.Table, extension.Strikethrough)),
		policy: p,
	}
}

// render is the template function: safe HTML for text.
func (m *markdown) render(text string) template.HTML {
	var buf bytes.Buffer
	if err := m.md.Convert([]byte(text), &buf); err != nil {
		return template.HTML(template.HTMLEscapeString(text))
	}
	return template.HTML(m.policy.SanitizeBytes(buf.Bytes()))
}
