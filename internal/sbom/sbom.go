// Package sbom describes the running binary as a CycloneDX 1.5 software
// bill of materials (第4 7(1)イ, inventory of software), built from the
// module build information Go embeds in every binary: the main module, the
// Go toolchain, every dependency with its version and go.sum hash, and the
// build settings (VCS revision, cgo, GOOS/GOARCH).
package sbom

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// Document is a CycloneDX BOM (the fields taxlink fills).
type Document struct {
	BOMFormat    string      `json:"bomFormat"`
	SpecVersion  string      `json:"specVersion"`
	SerialNumber string      `json:"serialNumber,omitempty"`
	Version      int         `json:"version"`
	Metadata     Metadata    `json:"metadata"`
	Components   []Component `json:"components"`
}

// Metadata names the binary described.
type Metadata struct {
	Timestamp  string     `json:"timestamp"`
	Component  Component  `json:"component"`
	Properties []Property `json:"properties,omitempty"`
}

// Component is one module.
type Component struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	PURL    string `json:"purl,omitempty"`
	Hashes  []Hash `json:"hashes,omitempty"`
}

// Hash is a component's content hash (from go.sum's h1: SHA-256).
type Hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

// Property is a build setting.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// FromBuildInfo builds the document for bi at time now.
func FromBuildInfo(bi *debug.BuildInfo, now time.Time) Document {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	doc := Document{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		Metadata: Metadata{
			Timestamp: now.UTC().Format(time.RFC3339),
			Component: Component{Type: "application", Name: bi.Main.Path, Version: version, PURL: purl(bi.Main.Path, version)},
		},
	}
	doc.Metadata.Properties = append(doc.Metadata.Properties, Property{"go.version", bi.GoVersion})
	for _, s := range bi.Settings {
		doc.Metadata.Properties = append(doc.Metadata.Properties, Property{"go.build." + s.Key, s.Value})
	}
	doc.Components = append(doc.Components, Component{Type: "platform", Name: "go", Version: strings.TrimPrefix(bi.GoVersion, "go"), PURL: "pkg:golang/std@" + strings.TrimPrefix(bi.GoVersion, "go")})
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		c := Component{Type: "library", Name: m.Path, Version: m.Version, PURL: purl(m.Path, m.Version)}
		if h, ok := h1(m.Sum); ok {
			c.Hashes = []Hash{{Alg: "SHA-256", Content: h}}
		}
		doc.Components = append(doc.Components, c)
	}
	return doc
}

func purl(path, version string) string {
	return "pkg:golang/" + path + "@" + version
}

// h1 turns a go.sum "h1:" hash (base64 SHA-256 of the module's file tree
// listing) into hex.
func h1(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", false
	}
	return hex.EncodeToString(raw), true
}

// Current returns the document of the running binary.
func Current(now time.Time) (Document, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Document{}, errors.New("sbom: the binary carries no build information")
	}
	return FromBuildInfo(bi, now), nil
}

// Handler serves the running binary's document as JSON.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		doc, err := Current(time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.cyclonedx+json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(doc)
	})
}
