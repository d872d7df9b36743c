package manifest

import (
	"path"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// maxLinkHops bounds how many links one resolution follows, as the kernel
// does (ELOOP); a cycle of links ends here too.
const maxLinkHops = 40

// CheckTree checks the entries as one tree, the way a file system that
// holds them would see it:
//   - no two names (of entries or of the directories above them) are the
//     same after Unicode NFC normalisation and case folding, which a
//     normalising or case-insensitive file system would merge;
//   - every link, resolved against the whole tree (following the links it
//     passes through, at most 40), stays inside it. A link that is lexically
//     harmless can escape through another link: a/b/m → ../../c then
//     a/b/l → m/../../../x.
//
// Entries are assumed to have passed ValidatePath and ValidateLink.
func CheckTree(entries []Entry) error {
	fold := cases.Fold()
	names := make(map[string]string, len(entries)) // folded → as given
	links := map[string]string{}
	for _, e := range entries {
		for p := e.Path; p != "."; p = path.Dir(p) {
			key := fold.String(norm.NFC.String(p))
			if prev, ok := names[key]; ok {
				if prev == p {
					break // this directory, and those above it, are known
				}
				return errs.E(errs.Invalid, "paths %q and %q are the same name once normalised (NFC) or case-folded", prev, p)
			}
			names[key] = p
		}
		if e.IsLink() {
			links[e.Path] = e.Link
		}
	}
	for p, target := range links {
		hops := 0
		if _, ok := resolveLink(links, p, target, &hops); !ok {
			return errs.E(errs.Invalid, "link %q → %q: escapes the deposit tree through its links, or links form a loop", p, target)
		}
	}
	return nil
}

// resolveLink walks target from the directory of link, following links
// in the tree, and returns where it leads as path elements below the root;
// ok is false when the walk leaves the root or takes too many hops.
func resolveLink(links map[string]string, link, target string, hops *int) (elems []string, ok bool) {
	*hops++
	if *hops > maxLinkHops {
		return nil, false
	}
	var cur []string
	if dir := path.Dir(link); dir != "." {
		cur = strings.Split(dir, "/")
	}
	for _, el := range strings.Split(target, "/") {
		switch el {
		case "", ".":
		case "..":
			if len(cur) == 0 {
				return nil, false
			}
			cur = cur[:len(cur)-1]
		default:
			cur = append(cur, el)
			p := strings.Join(cur, "/")
			if next, isLink := links[p]; isLink {
				if cur, ok = resolveLink(links, p, next, hops); !ok {
					return nil, false
				}
			}
		}
	}
	return cur, true
}
