package sbom

import (
	"runtime/debug"
	"testing"
	"time"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "taxlink"},
		Deps: []*debug.Module{
			{Path: "github.com/nats-io/nats-server/v2", Version: "v2.15.2", Sum: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/new", Version: "v1.1.0"}},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "CGO_ENABLED", Value: "1"}},
	}
	doc := FromBuildInfo(bi, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC))
	if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.5" || doc.Metadata.Component.Name != "taxlink" {
		t.Fatalf("header %+v", doc)
	}
	byName := map[string]Component{}
	for _, c := range doc.Components {
		byName[c.Name] = c
	}
	nats := byName["github.com/nats-io/nats-server/v2"]
	if nats.PURL != "pkg:golang/github.com/nats-io/nats-server/v2@v2.15.2" || len(nats.Hashes) != 1 || len(nats.Hashes[0].Content) != 64 {
		t.Errorf("nats-server component %+v", nats)
	}
	if _, ok := byName["example.com/new"]; !ok {
		t.Errorf("a replaced module must appear as its replacement")
	}
	if byName["go"].Version != "1.26.8" {
		t.Errorf("toolchain component %+v", byName["go"])
	}
	found := false
	for _, p := range doc.Metadata.Properties {
		found = found || p.Name == "go.build.vcs.revision" && p.Value == "abc123"
	}
	if !found {
		t.Errorf("build settings missing: %+v", doc.Metadata.Properties)
	}
}

func TestCurrent(t *testing.T) {
	doc, err := Current(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Components) < 1 || doc.Components[0].Name != "go" || doc.Metadata.Component.Name == "" {
		t.Errorf("the test binary's SBOM lacks the toolchain or the main module: %+v", doc)
	}
}
