package synth

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

var (
	lengthRE    = regexp.MustCompile(`/Length (\d+)( 0 R)?`)
	widthRE     = regexp.MustCompile(`/Width (\d+)`)
	heightRE    = regexp.MustCompile(`/Height (\d+)`)
	bpcRE       = regexp.MustCompile(`/BitsPerComponent (\d+)`)
	countRE     = regexp.MustCompile(`/Count (\d+)`)
	sizeRE      = regexp.MustCompile(`/Size (\d+)`)
	pageTypeRE  = regexp.MustCompile(`/Type /Page[ />]`)
	xrefEntryRE = regexp.MustCompile(`^(\d{10}) (\d{5}) ([nf]) \n$`)
)

// checkPDF verifies a generated PDF's structure independently of the writer:
// header and %%EOF, startxref pointing at the xref table, every xref entry
// pointing at "N 0 obj", /Size matching the table, every stream's /Length
// (direct or indirect) matching its data, every image decompressing to
// Height rows of Width x BitsPerComponent bits (rounded up to bytes), and the page count matching /Count. It returns the
// number of pages.
func checkPDF(t *testing.T, what string, b []byte) int {
	t.Helper()
	fail := func(format string, args ...any) int {
		t.Helper()
		t.Errorf("%s: %s", what, fmt.Sprintf(format, args...))
		return 0
	}
	if !bytes.HasPrefix(b, []byte("%PDF-1.4\n")) {
		return fail("does not start with %%PDF-1.4; starts %q", b[:min(len(b), 16)])
	}
	if !bytes.HasSuffix(bytes.TrimRight(b, "\r\n"), []byte("%%EOF")) {
		return fail("does not end with %%%%EOF; ends %q", b[max(0, len(b)-16):])
	}
	sx := bytes.LastIndex(b, []byte("startxref\n"))
	if sx < 0 {
		return fail("no startxref")
	}
	line, _, _ := strings.Cut(string(b[sx+len("startxref\n"):]), "\n")
	xref, err := strconv.Atoi(line)
	if err != nil || xref <= 0 || xref >= len(b) {
		return fail("startxref value %q is not an offset in the file", line)
	}
	rest := string(b[xref:])
	if !strings.HasPrefix(rest, "xref\n0 ") {
		return fail("startxref %d points at %q, not at an xref table starting with object 0", xref, rest[:min(len(rest), 10)])
	}
	rest = rest[len("xref\n0 "):]
	nline, rest, _ := strings.Cut(rest, "\n")
	n, err := strconv.Atoi(nline)
	if err != nil || n < 2 {
		return fail("xref subsection count %q", nline)
	}
	offsets := make([]int, n)
	for i := range n {
		if len(rest) < 20 {
			return fail("xref table truncated at entry %d", i)
		}
		m := xrefEntryRE.FindStringSubmatch(rest[:20])
		if m == nil {
			return fail("xref entry %d is not a 20-byte entry: %q", i, rest[:20])
		}
		rest = rest[20:]
		if i == 0 {
			if m[0] != "0000000000 65535 f \n" {
				return fail("xref entry 0 is %q, want the free-list head", m[0])
			}
			continue
		}
		if m[3] != "n" || m[2] != "00000" {
			return fail("xref entry %d is %q, want an in-use generation-0 entry", i, m[0])
		}
		offsets[i], _ = strconv.Atoi(m[1])
		want := fmt.Sprintf("%d 0 obj\n", i)
		if offsets[i] >= len(b) || !bytes.HasPrefix(b[offsets[i]:], []byte(want)) {
			return fail("xref entry %d offset %d does not point at %q (found %q)", i, offsets[i], want,
				b[min(offsets[i], len(b)):min(offsets[i]+12, len(b))])
		}
	}
	if !strings.HasPrefix(rest, "trailer\n") {
		return fail("no trailer after the xref table")
	}
	trailer := rest
	if m := sizeRE.FindStringSubmatch(trailer); m == nil || m[1] != strconv.Itoa(n) {
		return fail("trailer /Size %v, want %d", m, n)
	}
	if !strings.Contains(trailer, "/Root 1 0 R") {
		return fail("trailer has no /Root 1 0 R")
	}

	// Object bodies, from the xref offsets.
	body := func(i int) []byte {
		start := offsets[i] + len(fmt.Sprintf("%d 0 obj\n", i))
		end := len(b)
		for j := 1; j < n; j++ {
			if offsets[j] > offsets[i] && offsets[j] < end {
				end = offsets[j]
			}
		}
		if offsets[i] < xref && xref < end {
			end = xref
		}
		return b[start:end]
	}
	pages, count := 0, -1
	for i := 1; i < n; i++ {
		obj := body(i)
		if !bytes.HasSuffix(obj, []byte("endobj\n")) {
			return fail("object %d does not end with endobj", i)
		}
		dict, data, isStream := bytes.Cut(obj, []byte("\nstream\n"))
		if pageTypeRE.Match(dict) {
			pages++
		}
		if m := countRE.FindSubmatch(dict); m != nil && bytes.Contains(dict, []byte("/Type /Pages")) {
			count, _ = strconv.Atoi(string(m[1]))
		}
		if !isStream {
			continue
		}
		m := lengthRE.FindSubmatch(dict)
		if m == nil {
			return fail("stream object %d has no /Length", i)
		}
		length, _ := strconv.Atoi(string(m[1]))
		if len(m[2]) > 0 { // indirect: "/Length k 0 R"
			ref := length
			if ref <= 0 || ref >= n {
				return fail("object %d: /Length refers to missing object %d", i, ref)
			}
			v := strings.TrimSuffix(string(body(ref)), "\nendobj\n")
			if length, err = strconv.Atoi(v); err != nil {
				return fail("object %d: /Length object %d holds %q, not an integer", i, ref, v)
			}
		}
		if length > len(data) || !bytes.HasPrefix(data[length:], []byte("\nendstream\nendobj\n")) {
			return fail("object %d: /Length %d does not end the stream data at endstream", i, length)
		}
		if bytes.Contains(dict, []byte("/Subtype /Image")) {
			w, _ := strconv.Atoi(string(widthRE.FindSubmatch(dict)[1]))
			h, _ := strconv.Atoi(string(heightRE.FindSubmatch(dict)[1]))
			bpc, _ := strconv.Atoi(string(bpcRE.FindSubmatch(dict)[1]))
			rowBytes := (w*bpc + 7) / 8
			zr, err := zlib.NewReader(bytes.NewReader(data[:length]))
			if err != nil {
				return fail("object %d: image is not zlib data: %v", i, err)
			}
			raw, err := io.Copy(io.Discard, zr)
			if err != nil {
				return fail("object %d: image data does not decompress: %v", i, err)
			}
			if raw != int64(rowBytes*h) {
				return fail("object %d: image decompresses to %d bytes, want %d rows of %d bytes (%d px at %d bits)", i, raw, h, rowBytes, w, bpc)
			}
		}
	}
	if pages == 0 || pages != count {
		return fail("%d page objects, page tree /Count %d", pages, count)
	}
	return pages
}

func TestPDFStructureAndSize(t *testing.T) {
	g := NewGenerator(5)
	for _, size := range []int{0, 1_000, 20_000, 150_000, 300_000, 500_000, 2_500_000, 5_000_000} {
		b := g.PDF(size)
		what := fmt.Sprintf("PDF(%d)", size)
		pages := checkPDF(t, what, b)
		switch {
		case size < 5_000:
			if len(b) > 10_000 {
				t.Errorf("%s is %d bytes; the small-size floor should be a few KB", what, len(b))
			}
		default:
			if dev := float64(len(b)-size) / float64(size); dev < -0.03 || dev > 0.03 {
				t.Errorf("%s is %d bytes, %.1f%% off; want within 3%%", what, len(b), 100*dev)
			}
		}
		if minPages := (size + maxImageBytesPerPage - 1) / maxImageBytesPerPage; pages < minPages {
			t.Errorf("%s has %d pages, want at least %d (one per ~2 MB)", what, pages, minPages)
		}
		if size <= 500_000 && pages > 2 {
			t.Errorf("%s has %d pages, want 1 or 2", what, pages)
		}
	}
}

func TestWritePDFLargeStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20 MB; skipped in -short mode")
	}
	const size = 20 << 20
	var sink countingSink
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := WritePDF(&sink, size, 77)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("WritePDF(%d): %v", size, err)
	}
	if n != sink.n {
		t.Errorf("WritePDF returned %d, but the writer received %d bytes", n, sink.n)
	}
	if dev := float64(n-size) / size; dev < -0.01 || dev > 0.01 {
		t.Errorf("WritePDF(%d) wrote %d bytes, %.2f%% off; want within 1%%", size, n, 100*dev)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("WritePDF(%d MB) allocated %d bytes in total; it must stream, not build the document in memory", size>>20, alloc)
	}

	// The same seed into memory, for a full structural check.
	var buf bytes.Buffer
	if _, err := WritePDF(&buf, size, 77); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != n {
		t.Errorf("second WritePDF with the same seed wrote %d bytes, first %d", buf.Len(), n)
	}
	if pages := checkPDF(t, "WritePDF(20 MB)", buf.Bytes()); pages < 10 {
		t.Errorf("20 MB PDF has %d pages, want >= 10 (about 2 MB of image per page)", pages)
	}
}

// countingSink discards what it is given, counting it.
type countingSink struct{ n int64 }

func (c *countingSink) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return len(b), nil
}

// failingWriter accepts limit bytes and then fails.
type failingWriter struct{ limit int }

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(b []byte) (int, error) {
	if len(b) > f.limit {
		n := f.limit
		f.limit = 0
		return n, errDiskFull
	}
	f.limit -= len(b)
	return len(b), nil
}

func TestWritePDFReportsWriterErrors(t *testing.T) {
	for _, limit := range []int{0, 100, 200_000} {
		fw := &failingWriter{limit: limit}
		n, err := WritePDF(fw, 1_000_000, 1)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("WritePDF into a writer failing after %d bytes: error %v, want one wrapping %v", limit, err, errDiskFull)
		}
		if n != int64(limit) {
			t.Errorf("WritePDF into a writer failing after %d bytes reported %d bytes written", limit, n)
		}
	}
}

func TestPDFAcceptedByPdfinfo(t *testing.T) {
	pdfinfo, err := exec.LookPath("pdfinfo")
	if err != nil {
		if os.Getenv("TAXLINK_TEST_STRICT") == "1" {
			t.Fatal("pdfinfo not on PATH and TAXLINK_TEST_STRICT=1: install poppler-utils")
		}
		t.Skip("pdfinfo not on PATH: install poppler-utils to check generated PDFs with it")
	}
	g := NewGenerator(8)
	var scan Notification
	for scan.Type != TypePaperReturnScan {
		scan = g.Next("札幌市", "北海道")
	}
	var big bytes.Buffer
	if _, err := WritePDF(&big, 4_500_000, 9); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string][]byte{"scan.pdf": scan.Body, "tiny.pdf": g.PDF(0), "big.pdf": big.Bytes()} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, body, 0o600); err != nil {
				t.Fatal(err)
			}
			wantPages := checkPDF(t, name, body)
			cmd := exec.Command(pdfinfo, path)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("pdfinfo %s failed: %v\n%s", name, err, stderr.String())
			}
			// poppler reports repaired damage (bad xref etc.) on stderr
			// while still exiting 0.
			if stderr.Len() > 0 {
				t.Errorf("pdfinfo %s complained: %s", name, stderr.String())
			}
			out := stdout.String()
			if !regexp.MustCompile(`(?m)^PDF version:\s+1\.4$`).MatchString(out) {
				t.Errorf("pdfinfo %s: no \"PDF version: 1.4\" in:\n%s", name, out)
			}
			if !regexp.MustCompile(fmt.Sprintf(`(?m)^Pages:\s+%d$`, wantPages)).MatchString(out) {
				t.Errorf("pdfinfo %s: want Pages: %d in:\n%s", name, wantPages, out)
			}
		})
	}
}
