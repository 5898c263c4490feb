package selfcheck

import (
	"slices"
	"testing"

	"taxlink/internal/standard"
)

// TestCatalogueChecksExist checks that every check an item names exists
// and every check serves an item.
func TestCatalogueChecksExist(t *testing.T) {
	used := map[string]bool{}
	for _, it := range standard.Catalogue() {
		for _, c := range it.Checks {
			if _, ok := checkFuncs[c]; !ok {
				t.Errorf("%s: no check named %s", it.ID, c)
			}
			used[c] = true
		}
	}
	for _, c := range CheckNames() {
		if !used[c] {
			t.Errorf("check %s is used by no item", c)
		}
	}
	if !slices.IsSorted(CheckNames()) {
		t.Error("CheckNames not sorted")
	}
}
