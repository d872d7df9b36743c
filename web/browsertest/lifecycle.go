package browsertest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// SupportDates are the dates a vendor types into the support form, by
// field name (general_availability, end_of_sales,
// end_of_security_support, end_of_life).
type SupportDates map[string]string

// VendorDeclaresSupport is the vendor's path to a support period: log in,
// open the support form of product on the vendor page, type dates (each
// field emptied first) and submit; the vendor page confirms. It returns
// the text of the product's row on the vendor page afterwards.
func VendorDeclaresSupport(t testing.TB, b *Browser, base, token, product string, dates SupportDates) string {
	t.Helper()
	Login(t, b, base, token)
	b.Navigate(t, base+"/vendor")
	form := `#support-` + product
	b.Do(t, "open the support form", chromedp.Evaluate[chromedp.Void](`document.querySelector("details:has(`+form+`)").open = true`))
	b.CheckA11y(t)
	for name, v := range dates {
		field := form + ` input[name="` + name + `"]`
		b.Do(t, "type "+name,
			chromedp.Evaluate[chromedp.Void](`document.querySelector(`+js(field)+`).value = ""`),
			chromedp.SendKeys(chromedp.CSS(field), v),
		)
	}
	b.Do(t, "declare", chromedp.Click(chromedp.CSS(form+` button[type="submit"]`)))
	b.WaitFor(t, "the confirmation", `location.search.includes("done=support") || !!document.querySelector("main .error, main [role=alert]")`)
	if msg := Eval[string](t, b, `location.search.includes("done=support") ? "" : document.querySelector("main .error, main [role=alert]").textContent`); msg != "" {
		t.Fatalf("the support period was refused: %s", msg)
	}
	b.Screenshot(t, "vendor-support")
	return b.Text(t, "#product-"+product)
}
