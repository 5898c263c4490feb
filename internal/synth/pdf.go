package synth

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// PDF layout constants.
const (
	pageWidthPt  = 595 // A4 in PostScript points
	pageHeightPt = 842
	// maxImageBytesPerPage caps one page's compressed image, so that even a
	// 300 dpi page has room to spare; larger PDFs get more pages.
	maxImageBytesPerPage = 2_000_000
	// noisyBytesPerPixel is the compressed size of one "noisy" pixel: 4
	// random bits, which deflate cannot shrink. It picks resolutions; the
	// size controller measures real output.
	noisyBytesPerPixel = 0.5
	// flushEveryBytes is about how much image data goes into the compressor
	// between flushes, at which the size controller measures real output.
	// Flushing more often costs speed (each flush ends a deflate block).
	flushEveryBytes = 256 << 10
	// paperGrey is the 4-bit grey level (0 black .. 15 white) of blank paper.
	paperGrey = 0xe
)

// scanDPIs are the resolutions a page may be "scanned" at, lowest first.
var scanDPIs = [...]int{36, 50, 72, 100, 150, 200, 300}

// WritePDF writes to w a valid PDF 1.4 "scan" of about approxSize bytes
// (within a few percent above ~20 KB; a floor of a few KB applies), determined
// by seed, and returns the number of bytes written. Each page is A4 with one
// FlateDecode 4-bit grayscale image (a band of noise-like "scan" data above
// blank paper) and a line of text; there are one or two pages, more for large
// sizes (about 2 MB of image per page). The image data is incompressible, like
// a real scan's, so transport compression does not shrink it. The document is generated as it is written: memory use does not grow
// with approxSize, so it suits payloads of tens or hundreds of megabytes.
// Errors from w are returned wrapped.
func WritePDF(w io.Writer, approxSize int, seed uint64) (int64, error) {
	r := newRand(seed)
	pages := 1 + r.IntN(2)
	return writePDF(w, approxSize, pages, r, "Synthetic scanned document")
}

// renderPDF returns writePDF's output for a fresh source seeded with seed.
func renderPDF(approxSize, minPages int, seed uint64, title string) []byte {
	var buf bytes.Buffer
	buf.Grow(max(approxSize, 0) + 16<<10)
	if _, err := writePDF(&buf, approxSize, minPages, newRand(seed), title); err != nil {
		// A bytes.Buffer does not fail (short of running out of memory).
		panic("synth: rendering PDF in memory: " + err.Error())
	}
	return buf.Bytes()
}

// countingWriter counts the bytes its underlying writer accepted.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// pdfWriter writes PDF syntax, remembering object offsets. Its first error
// sticks: later writes do nothing and return it.
type pdfWriter struct {
	w       *bufio.Writer
	n       int64   // bytes written so far (the current offset)
	offsets []int64 // offsets[i] is object i's offset
	err     error
}

// Write implements io.Writer, so the image compressor can write through it.
func (p *pdfWriter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.err = err
	return n, err
}

func (p *pdfWriter) printf(format string, args ...any) {
	fmt.Fprintf(p, format, args...)
}

// object writes a whole indirect object whose body is body.
func (p *pdfWriter) object(num int, body string) {
	p.offsets[num] = p.n
	p.printf("%d 0 obj\n%s\nendobj\n", num, body)
}

// streamObject writes an indirect stream object holding data uncompressed.
func (p *pdfWriter) streamObject(num int, data string) {
	p.offsets[num] = p.n
	p.printf("%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n", num, len(data), data)
}

// writePDF writes the PDF; see WritePDF. Objects: 1 catalog, 2 page tree,
// 3 font, 4 document info, then per page i (from 0) 5+4i page, 6+4i content
// stream, 7+4i image, 8+4i image stream length (known only after streaming).
func writePDF(w io.Writer, approxSize, minPages int, r *rand.Rand, title string) (int64, error) {
	pages := max(minPages, 1, (approxSize+maxImageBytesPerPage-1)/maxImageBytesPerPage)
	nobj := 4 + 4*pages
	cw := &countingWriter{w: w}
	p := &pdfWriter{w: bufio.NewWriterSize(cw, 64<<10), offsets: make([]int64, nobj+1)}

	// One compressor, reset per page: each costs about a megabyte.
	zw, err := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	if err != nil {
		return 0, fmt.Errorf("synth: write PDF: %w", err)
	}

	p.printf("%%PDF-1.4\n%%\xe2\xe3\xcf\xd3\n") // binary comment: marks the file as binary
	p.object(1, "<< /Type /Catalog /Pages 2 0 R >>")
	kids := make([]string, pages)
	for i := range kids {
		kids[i] = fmt.Sprintf("%d 0 R", 5+4*i)
	}
	p.object(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages))
	p.object(3, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	p.object(4, fmt.Sprintf("<< /Title %s /Producer (taxlink synth: synthetic data) /Creator (taxlink synth) >>", pdfString(title)))

	for i := range pages {
		if p.err != nil {
			break // w failed: stop generating; reported below
		}
		base := 5 + 4*i
		// Bytes still to come after this page's image: roughly 700 per
		// page of dictionaries, plus the xref table and trailer.
		tail := int64(700*(pages-i) + 20*(nobj+1) + 250)
		budget := (int64(approxSize) - p.n - tail) / int64(pages-i)
		width, height := scanResolution(budget)

		p.object(base, fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "+
			"/Resources << /Font << /F1 3 0 R >> /XObject << /Im1 %d 0 R >> >> /Contents %d 0 R >>",
			pageWidthPt, pageHeightPt, base+2, base+1))
		text := fmt.Sprintf("%s - page %d of %d", title, i+1, pages)
		// The image fills the page; the text sits on a white strip over it.
		p.streamObject(base+1, fmt.Sprintf("q\n%d 0 0 %d 0 0 cm\n/Im1 Do\nQ\nq\n1 g\n30 %d %d 16 re\nf\nQ\nBT\n/F1 9 Tf\n36 %d Td\n%s Tj\nET",
			pageWidthPt, pageHeightPt, pageHeightPt-29, pageWidthPt-60, pageHeightPt-24, pdfString(text)))

		p.offsets[base+2] = p.n
		p.printf("%d 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "+
			"/BitsPerComponent 4 /Filter /FlateDecode /Length %d 0 R >>\nstream\n", base+2, width, height, base+3)
		length, err := p.scanImage(zw, r, width, height, budget)
		if err != nil {
			return cw.n, fmt.Errorf("synth: write PDF: page %d image: %w", i+1, err)
		}
		p.printf("\nendstream\nendobj\n")
		p.object(base+3, fmt.Sprint(length))
	}

	xref := p.n
	p.printf("xref\n0 %d\n0000000000 65535 f \n", nobj+1)
	for num := 1; num <= nobj; num++ {
		p.printf("%010d 00000 n \n", p.offsets[num])
	}
	id := fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
	p.printf("trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n", nobj+1, id, id, xref)
	if p.err == nil {
		p.err = p.w.Flush()
	}
	if p.err != nil {
		return cw.n, fmt.Errorf("synth: write PDF: %w", p.err)
	}
	return cw.n, nil
}

// scanResolution returns the pixel size of an A4 scan at the lowest
// resolution in scanDPIs that can hold budget compressed bytes with at most
// 60% of rows noisy.
func scanResolution(budget int64) (width, height int) {
	for _, dpi := range scanDPIs {
		width, height = (827*dpi+50)/100, (1169*dpi+50)/100 // 8.27 x 11.69 inches
		if float64(budget) <= 0.6*noisyBytesPerPixel*float64(width)*float64(height) {
			break
		}
	}
	return width, height
}

// scanImage writes the zlib-compressed pixels of a width x height 4-bit grey
// image whose compressed size is about budget bytes, and returns that size.
// zw is reset to write to p. The "scan" is a band of noise at the top (16
// equiprobable grey levels, i.e. random bytes, which deflate stores as they
// are) and blank paper below it (which compresses to almost nothing): noise
// rows are written until the output, measured at every flush, reaches the
// budget less an estimate of what the blank rows will cost. Keeping the two
// kinds of rows apart keeps deflate on its fast paths.
func (p *pdfWriter) scanImage(zw *zlib.Writer, r *rand.Rand, width, height int, budget int64) (int64, error) {
	start := p.n
	zw.Reset(p)
	row := make([]byte, (width+1)/2) // rows are padded to whole bytes
	rowCost := float64(len(row))
	flushRows := max(1, flushEveryBytes/len(row))
	// A blank row is a few deflate match tokens: about 1/800 of its size.
	blankCost := rowCost / 700
	flushed := start // p.n at the last flush
	pending := 0.0   // compressed bytes of noise rows written since, estimated
	noise := true
	for y := range height {
		if noise && float64(flushed-start)+pending+rowCost/2+blankCost*float64(height-y) >= float64(budget) {
			noise = false
			if err := zw.Flush(); err != nil { // keep the kinds in separate blocks
				return 0, err
			}
			for x := range row {
				row[x] = paperGrey<<4 | paperGrey
			}
		}
		if noise {
			for x := 0; x < len(row); x += 8 {
				v := r.Uint64()
				if x+8 <= len(row) {
					binary.LittleEndian.PutUint64(row[x:], v)
					continue
				}
				for j := x; j < len(row); j++ {
					row[j] = byte(v)
					v >>= 8
				}
			}
			pending += rowCost
		}
		if _, err := zw.Write(row); err != nil {
			return 0, err
		}
		if noise && (y+1)%flushRows == 0 {
			if err := zw.Flush(); err != nil {
				return 0, err
			}
			flushed, pending = p.n, 0
		}
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return p.n - start, p.err
}

// pdfString returns s as a PDF literal string: printable ASCII kept (with
// \, ( and ) escaped), anything else replaced by '?'.
func pdfString(s string) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, c := range s {
		switch {
		case c == '\\' || c == '(' || c == ')':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteRune(c)
		default:
			b.WriteByte('?')
		}
	}
	b.WriteByte(')')
	return b.String()
}
