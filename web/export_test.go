package web

// RenderMarkdownForTest is the pages' Markdown renderer, for tests.
var RenderMarkdownForTest = newMarkdown().render
