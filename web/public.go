package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

const searchLimit = 50

type homeData struct {
	Stats   Stats
	Query   string
	Total   int  // how many products match Query; Results holds the best of them
	Capped  bool // more than Total match
	Results []ProductSummary
	// Example is what the search box suggests: a product this registry
	// lists, as a person would type it.
	Example string
}

// searchExample is the search box's suggestion: the vendor and model of
// the first product listed, so that trying it finds something.
func searchExample(products []ProductSummary) string {
	if len(products) == 0 {
		return "Acme Thermo 2"
	}
	return products[0].Vendor + " " + products[0].Model
}

func (s *Site) home(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.deps.Catalog.Stats(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	recent, err := s.deps.Catalog.Search(ctx, "", 10)
	if err != nil {
		s.fail(c, err)
		return
	}
	p := s.newPage(c, "Keep abandoned devices alive", homeData{Stats: st, Total: recent.Total, Results: recent.Products, Example: searchExample(recent.Products)})
	p.APIURL = s.opts.StatsAPIURL
	s.render(c, http.StatusOK, "home/index", "", p)
}

// search answers the full page, or with partial=1 only the results list
// that the search-as-you-type script swaps in.
func (s *Site) search(c *gin.Context) {
	q := strings.TrimSpace(c.Query("q"))
	if len(q) > 200 {
		q = q[:200]
	}
	ctx := c.Request.Context()
	res, err := s.deps.Catalog.Search(ctx, q, searchLimit)
	if err != nil {
		s.fail(c, err)
		return
	}
	title := "Search"
	if q != "" {
		title = "Search: " + q
	}
	data := homeData{Query: q, Total: res.Total, Capped: res.Capped, Results: res.Products}
	frag := ""
	if c.Query("partial") == "1" {
		frag = "results"
	} else {
		data.Example = searchExample(res.Products)
		if len(res.Products) == 0 && q != "" {
			first, err := s.deps.Catalog.Search(ctx, "", 1)
			if err != nil {
				s.fail(c, err)
				return
			}
			data.Example = searchExample(first.Products)
		}
	}
	p := s.newPage(c, title, data)
	s.render(c, http.StatusOK, "search/index", frag, p)
}

func (s *Site) product(c *gin.Context) {
	pp, err := s.deps.Catalog.Product(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	pp.RegistryURL = s.registryURL(c)
	p := s.newPage(c, pp.Vendor+" "+pp.Model, pp)
	p.APIURL = pp.APIURL
	if pp.FeedURL != "" {
		p.Feeds = append([]FeedLink{{Title: "New firmware for the " + pp.Vendor + " " + pp.Model, URL: pp.FeedURL}}, p.Feeds...)
	}
	s.render(c, http.StatusOK, "product/show", "", p)
}

// build answers the build page, or with partial=1 only its status section,
// which the page polls while the build runs.
func (s *Site) build(c *gin.Context) {
	b, err := s.deps.Farm.Build(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := s.newPage(c, "Build "+b.ID, b)
	p.APIURL = b.APIURL
	frag := ""
	if c.Query("partial") == "1" {
		frag = "buildstatus"
	}
	s.render(c, http.StatusOK, "build/show", frag, p)
}

// jobLogPage is a job's log as a page.
type jobLogPage struct {
	BuildID, JobID, Text string
	Done                 bool
}

// jobLog serves a job log from an offset as plain text; the headers
// X-Log-Next and X-Log-Done tell the polling script where to continue and
// when to stop. A browser opening the link without an offset (no
// JavaScript, or a new tab) gets the log so far as a page.
func (s *Site) jobLog(c *gin.Context) {
	off, err := strconv.ParseInt(c.DefaultQuery("offset", "0"), 10, 64)
	if err != nil || off < 0 {
		s.fail(c, errs.E(errs.Invalid, "offset must be a non-negative integer"))
		return
	}
	ch, err := s.deps.Farm.Log(c.Request.Context(), c.Param("id"), c.Param("job"), off)
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, script := c.GetQuery("offset"); !script && strings.Contains(c.GetHeader("Accept"), "text/html") {
		// A person opened the link: a page that reads on a phone too.
		p := s.newPage(c, "Log of job "+c.Param("job"), jobLogPage{BuildID: c.Param("id"), JobID: c.Param("job"), Text: string(ch.Data), Done: ch.Done})
		s.render(c, http.StatusOK, "build/log", "", p)
		return
	}
	h := c.Writer.Header()
	h.Set("X-Log-Next", strconv.FormatInt(ch.Next, 10))
	h.Set("X-Log-Done", strconv.FormatBool(ch.Done))
	h.Set("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", ch.Data)
}

// depositFiles is the file list of a deposit ("Browse the released
// files"); its JSON stays at /v1/deposits/:id.
func (s *Site) depositFiles(c *gin.Context) {
	df, err := s.deps.Escrow.DepositFiles(c.Request.Context(), caller(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := s.newPage(c, "Files left for "+df.ProductID, df)
	p.APIURL = df.JSONURL
	s.render(c, http.StatusOK, "deposit/files", "", p)
}
