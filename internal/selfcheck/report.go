package selfcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"taxlink/internal/standard"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"taxlink/internal/fsutil"
)

// File names WriteFiles writes.
const (
	MarkdownFile = "selfcheck.md"
	JSONFile     = "selfcheck.json"
)

// Document is the whole self-check as written to JSONFile: the reports of
// one or more processes and their combined summary (see Combine).
type Document struct {
	// Time is when the document was made.
	Time time.Time `json:"time"`
	// Total counts the items over every report (see Combine).
	Total Summary `json:"total"`
	// Reports are the processes' reports, hub first in a network.
	Reports []*Report `json:"reports"`
}

// NewDocument returns the document of reports, made at now.
func NewDocument(now time.Time, reports ...*Report) *Document {
	return &Document{Time: now.UTC(), Total: Combine(reports), Reports: reports}
}

// WriteFiles writes dir/selfcheck.md and dir/selfcheck.json (creating dir,
// mode 0700; each file written atomically, mode 0600) and returns their
// paths.
func (d *Document) WriteFiles(dir string) (mdPath, jsonPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("selfcheck: %w", err)
	}
	var md strings.Builder
	if err := d.WriteMarkdown(&md); err != nil {
		return "", "", err
	}
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("selfcheck: %w", err)
	}
	mdPath, jsonPath = filepath.Join(dir, MarkdownFile), filepath.Join(dir, JSONFile)
	if err := fsutil.WriteFileAtomic(mdPath, []byte(md.String()), 0o600); err != nil {
		return "", "", fmt.Errorf("selfcheck: %w", err)
	}
	if err := fsutil.WriteFileAtomic(jsonPath, append(js, '\n'), 0o600); err != nil {
		return "", "", fmt.Errorf("selfcheck: %w", err)
	}
	return mdPath, jsonPath, nil
}

// statusJA is the Japanese word for a status in the Markdown report.
func statusJA(s Status) string {
	switch s {
	case StatusPass:
		return "適合"
	case StatusFail:
		return "不適合"
	case StatusAttested:
		return "確認済（申告）"
	case StatusUnattested:
		return "未確認"
	}
	return string(s)
}

// mdCell escapes s for a Markdown table cell.
func mdCell(s string) string {
	s = oneLine(s)
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, "|", `\|`)
}

// WriteMarkdown writes the report for auditors: a heading 自己点検結果, the
// combined summary, then per process a table 項番 | 項目 | 結果 | 根拠.
func (d *Document) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# 自己点検結果\n\n")
	fmt.Fprintf(&b, "総務省告示第151号 第2〜第6 の全 %d 項目の自己点検(第4 11(1))。実施日時: %s\n\n", len(standard.Catalogue()), d.Time.Format(time.RFC3339))
	b.WriteString("結果: 適合 (pass) / 不適合 (fail) は設定と状態の自動点検、確認済 (attested) / 未確認 (unattested) は運用者の申告(有効期限付き)による。\n\n")
	if len(d.Reports) > 1 {
		b.WriteString("## 総括\n\n")
		b.WriteString("| 対象 | 役割 | 項目数 | 適合 | 不適合 | 確認済 | 未確認 |\n|---|---|---|---|---|---|---|\n")
		for _, r := range d.Reports {
			s := r.Summary
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d |\n", mdCell(r.Participant), r.Role, s.Items, s.Pass, s.Fail, s.Attested, s.Unattested)
		}
		t := d.Total
		fmt.Fprintf(&b, "| 全体 | | %d | %d | %d | %d | %d |\n\n", t.Items, t.Pass, t.Fail, t.Attested, t.Unattested)
		b.WriteString("全体: 自動点検の項目はいずれかの対象で不適合なら不適合、申告の項目はすべての対象で確認済のときのみ確認済。\n\n")
	}
	for _, r := range d.Reports {
		fmt.Fprintf(&b, "## %s (%s, %s)\n\n", r.Participant, r.Role, r.Environment)
		running := "稼働中(通信の点検を実施)"
		if !r.Running {
			running = "停止中又は点検対象外(設定とファイルのみ点検)"
		}
		fmt.Fprintf(&b, "設定: `%s` — %s\n\n", r.Config, running)
		s := r.Summary
		fmt.Fprintf(&b, "%d 項目: 適合 %d、不適合 %d、確認済 %d、未確認 %d\n\n", s.Items, s.Pass, s.Fail, s.Attested, s.Unattested)
		b.WriteString("| 項番 | 項目 | 結果 | 根拠 |\n|---|---|---|---|\n")
		for _, it := range r.Items {
			fmt.Fprintf(&b, "| %s | %s | %s (%s) | %s |\n", it.ID, mdCell(it.Title), statusJA(it.Status), it.Status, mdCell(it.Reason))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTable writes r as a table for a terminal: item, result, reason
// (cut to width characters; 0 means no limit).
func WriteTable(w io.Writer, r *Report, width int) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ITEM\tRESULT\tREASON")
	for _, it := range r.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.ID, it.Status, cut(it.Reason, width))
	}
	return tw.Flush()
}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
