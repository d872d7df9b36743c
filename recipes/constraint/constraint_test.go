package constraint_test

import (
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/recipes/constraint"
)

func TestConstraints(t *testing.T) {
	tests := []struct {
		constraint, version string
		want                bool
	}{
		{"1.26", "1.26.8", true},
		{"1.26", "go1.26.8", true},
		{"1.26", "v1.26.8", true},
		{"1.26", "1.26", true},
		{"1.26", "1.27.0", false},
		{"1.26", "1.2", false},
		{"1.26", "1.260", false},
		{"1.26", "1.260.1", false},
		{"1.26", "1.25.3", false},
		{"1.26", "1.26rc1", false},
		{"1.26", "1.26.0rc1", false},
		{"1.26", "1.26.1rc1", true},
		{"1.26", "1.27rc1", false},
		{">=1.25", "1.26.8", true},
		{">=1.25", "1.25.0", true},
		{">=1.25", "1.24.9", false},
		{">=1.26", "1.26rc1", false},
		{">=1.26", "go1.26.0", true},
		{"<1.26", "1.26rc1", true},
		{">= 1.25 , < 1.27", "1.26.1", true},
		{">=1.25,<1.27", "1.26.1", true},
		{">=1.25,<1.27", "1.27", false},
		{">1.25", "1.25", false},
		{"<=12.2", "12.2.1", false},
		{"=12.2.1", "12.2.1", true},
		{"=12.2", "12.2.0", true},
		{">=12.2", "12.2.1", true},
		{"<13", "12.2.1", true},
		{"<13", "13.1", false},
		{"12", "12.2.1 20221205", true},
		{"=12.2.1", "12.2.1+local", true},
		{"", "anything", true},
		{"*", "1.0", true},
		{"1.26", "unknown", false},
		{"1.26", "", false},
	}
	for _, tt := range tests {
		verb := "does not satisfy"
		if tt.want {
			verb = "satisfies"
		}
		t.Run(tt.version+" "+verb+" "+tt.constraint, func(t *testing.T) {
			c, err := constraint.Parse(tt.constraint)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Matches(tt.version); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
			if got := constraint.Satisfies(tt.version, tt.constraint); got != tt.want {
				t.Errorf("Satisfies = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMalformedConstraintsAreRefusedAndSatisfiedByNothing(t *testing.T) {
	for _, bad := range []string{"~1.2", "1.x", ">=", "1.26,", "latest", "==1.26", ">=x", "1.26rc1", "go1.26", "1.0000000001", ">=1.25" + strings.Repeat(",<2", 20)} {
		t.Run(bad, func(t *testing.T) {
			if _, err := constraint.Parse(bad); err == nil {
				t.Errorf("Parse(%q) accepted", bad)
			}
			if constraint.Satisfies("1.26.8", bad) {
				t.Errorf("Satisfies(1.26.8, %q) = true", bad)
			}
		})
	}
}
