package web

// RenderMarkdownForTest is the pages' Markdown renderer, for tests.
var RenderMarkdownForTest = newMarkdown().render

// PolicyChoiceOf reads the deposit form's policy fields, for tests.
var PolicyChoiceOf = PolicySpec.choice
