package console

import (
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// jst is Japan Standard Time, in which the console shows times.
var jst = time.FixedZone("JST", 9*60*60)

// messages holds the console's text: key → [Japanese, English].
var messages = map[string][2]string{
	"app":              {"国税連携 コンソール", "taxlink console"},
	"nav.dashboard":    {"ダッシュボード", "Dashboard"},
	"nav.records":      {"記録の検索", "Records"},
	"nav.approvals":    {"承認", "Approvals"},
	"nav.operators":    {"操作者", "Operators"},
	"nav.incidents":    {"インシデント", "Incidents"},
	"inc.title":        {"インシデント対応", "Incidents"},
	"inc.open":         {"インシデントを登録", "Open an incident"},
	"inc.name":         {"件名", "Title"},
	"inc.opened":       {"発生・登録", "Opened"},
	"inc.closed":       {"終結", "Closed"},
	"inc.note":         {"経過を記録", "Add a note"},
	"inc.rootcause":    {"原因と再発防止策を記録", "Record the root cause"},
	"inc.close":        {"終結する", "Close"},
	"inc.timeline":     {"経緯（タイムライン）", "Timeline"},
	"inc.report":       {"報告書（印刷用）", "Report (printable)"},
	"nav.attestations": {"自己点検の確認記録", "Attestations"},
	"att.title":        {"自己点検（組織的措置の確認記録）", "Self-check attestations"},
	"att.help":         {"組織的な措置（研修、入退室管理、契約等）が実施されていることを、根拠とともに記録します。期限切れの記録は自己点検で「未確認」になります。", "Record that an organisational measure (training, building access, contracts …) is in place, with the evidence. Expired attestations count as unattested in the self-check."},
	"att.item":         {"項番", "Item"},
	"att.status":       {"確認状況", "Status"},
	"att.statement":    {"確認内容と根拠", "Statement and evidence"},
	"att.valid":        {"有効日数", "Valid for (days)"},
	"att.add":          {"確認を記録", "Attest"},
	"att.days":         {"有効日数は 1〜1095 日です。", "Validity is 1 to 1095 days."},
	"att.none":         {"未確認", "unattested"},
	"nav.history":      {"操作履歴", "History"},
	"nav.alerts":       {"警報", "Alerts"},
	"nav.signout":      {"サインアウト", "Sign out"},
	"nav.signout-all":  {"全端末からサインアウト", "Sign out everywhere"},
	"login.title":      {"サインイン", "Sign in"},
	"login.operator":   {"操作者ID", "Operator ID"},
	"login.button":     {"セキュリティキーでサインイン", "Sign in with security key"},
	"login.help":       {"セキュリティキーまたは生体認証で本人確認を行います（PIN または生体認証が必要です）。", "Your security key or platform authenticator verifies you (PIN or biometric required)."},
	"reauth.title":     {"再認証", "Re-authenticate"},
	"reauth.help":      {"一定時間操作がなかったため、再度本人確認が必要です。", "You were idle; verify yourself again to continue."},
	"enrol.title":      {"操作者の登録", "Operator enrolment"},
	"enrol.code":       {"登録コード", "Enrolment code"},
	"enrol.button":     {"セキュリティキーを登録", "Register security key"},
	"enrol.done":       {"登録しました。管理者の承認後にサインインできます。", "Registered. You can sign in once an administrator approves you."},
	"err.nocard":       {"スマートカードの証明書が提示されていません。カードを挿入してやり直してください。", "No smart card certificate was presented; insert the card and try again."},
	"err.pinmatch":     {"PIN が一致しないか、長すぎます。", "The PINs differ or are too long."},
	"err.pinpolicy":    {"PIN が規則を満たしていません", "The PIN does not meet the policy"},
	"err.pinreused":    {"最近使用した PIN は使えません。", "A recently used PIN cannot be reused."},
	"card.title":       {"スマートカード＋PIN", "Smart card + PIN"},
	"card.pin":         {"PIN", "PIN"},
	"card.pin2":        {"PIN（確認）", "PIN (again)"},
	"card.button":      {"スマートカードと PIN でサインイン", "Sign in with smart card and PIN"},
	"card.enrol":       {"スマートカードを登録", "Register smart card"},
	"pin.title":        {"PIN の変更", "Change PIN"},
	"pin.help":         {"PIN の有効期限が切れました。新しい PIN を設定してください。", "Your PIN expired; set a new one."},
	"pin.current":      {"現在の PIN", "Current PIN"},
	"pin.new":          {"新しい PIN", "New PIN"},
	"pin.button":       {"変更してサインイン", "Change and sign in"},
	"err.quarantined":  {"この記録はマルウェア検査で検出されたため隔離されています。セキュリティ責任者に連絡してください。", "This record is quarantined: the malware check found something. Contact the security officer."},
	"err.scanpending":  {"この記録はまだマルウェア検査を終えていません。しばらくしてから開いてください。", "This record has not passed the malware check yet; try again shortly."},
	"err.request":      {"要求が不正です。", "The request is malformed."},
	"err.internal":     {"内部エラーが発生しました。管理者に連絡してください。", "Internal error; contact an administrator."},
	"err.ceremony":     {"認証手続きの有効期限が切れました。最初からやり直してください。", "The authentication ceremony expired; start again."},
	"err.register":     {"セキュリティキーを登録できませんでした。", "The authenticator could not be registered."},
	"err.state":        {"この操作者は現在この操作を行えません。", "This operator cannot do that now."},
	"err.signin":       {"サインインできませんでした。", "Sign-in failed."},
	"err.locked":       {"失敗が続いたためロックされました。管理者に解除を依頼してください。", "Locked after repeated failures; ask an administrator to unlock."},
	"err.csrf":         {"フォームの有効期限が切れました。ページを再読み込みしてください。", "The form expired; reload the page."},
	"err.forbidden":    {"この操作を行う権限がありません。", "You are not allowed to do this."},
	"err.notfound":     {"見つかりません。", "Not found."},
	"err.self":         {"自分の申請・登録を自分で承認することはできません。", "You cannot approve your own request."},
	"dash.holds":       {"実施中の一時停止措置", "Holds in force"},
	"dash.bulletins":   {"機構からのお知らせ", "Bulletins from the 機構"},
	"dash.title":       {"稼働状況", "Status"},
	"dash.throughput":  {"処理件数（毎秒）", "Throughput (per second)"},
	"dash.backlog":     {"宛先別の滞留", "Backlog per recipient"},
	"dash.recipient":   {"宛先", "Recipient"},
	"dash.count":       {"件数", "Count"},
	"dash.oldest":      {"最古", "Oldest"},
	"dash.errors":      {"配信エラー", "Delivery errors"},
	"dash.certs":       {"証明書の有効期限", "Certificate expiry"},
	"dash.disk":        {"ディスク空き容量", "Free disk"},
	"dash.alerts":      {"最近の警報", "Recent alerts"},
	"op.title":         {"操作者の管理", "Operators"},
	"op.invite":        {"操作者を招待", "Invite an operator"},
	"op.id":            {"ID", "ID"},
	"op.name":          {"氏名", "Name"},
	"op.role":          {"役割", "Role"},
	"op.tenants":       {"担当団体", "Tenants"},
	"op.types":         {"通知種別", "Types"},
	"op.state":         {"状態", "State"},
	"op.approve":       {"承認", "Approve"},
	"op.unlock":        {"ロック解除", "Unlock"},
	"op.disable":       {"無効化", "Disable"},
	"op.invited":       {"招待しました。登録コード（一度だけ表示）:", "Invited. Enrolment code (shown once):"},
	"ap.title":         {"二者承認", "Two-person approvals"},
	"ap.request":       {"申請", "Request"},
	"ap.pending":       {"承認待ち", "Pending"},
	"ap.kind":          {"種類", "Kind"},
	"ap.object":        {"対象", "Object"},
	"ap.by":            {"申請者", "Requested by"},
	"ap.state":         {"状態", "State"},
	"ap.decided":       {"承認者", "Decided by"},
	"ap.result":        {"結果", "Result"},
	"ap.approve":       {"承認して実行", "Approve and execute"},
	"ap.reject":        {"却下", "Reject"},
	"ap.requested":     {"申請しました。別の承認者の承認後に実行されます。", "Requested. It runs once a different approver approves it."},
	"rec.title":        {"記録の検索", "Search records"},
	"rec.tenant":       {"団体", "Tenant"},
	"rec.type":         {"通知種別", "Type"},
	"rec.year":         {"年分", "Tax year"},
	"rec.from":         {"記録日（から）", "Recorded from"},
	"rec.to":           {"記録日（まで）", "Recorded to"},
	"rec.taxpayer":     {"個人番号・法人番号", "Taxpayer number"},
	"rec.search":       {"検索", "Search"},
	"rec.found":        {"件", "found"},
	"rec.recorded":     {"記録日時", "Recorded"},
	"rec.open":         {"開く", "Open"},
	"rec.download":     {"ダウンロード", "Download"},
	"rec.print":        {"印刷用表示", "Print view"},
	"rec.watermark":    {"閲覧者", "Viewed by"},
	"rec.binary":       {"この文書は画面に表示できません。ダウンロードしてください。", "This document cannot be shown; download it."},
	"hist.title":       {"操作履歴", "Operation history"},
	"hist.time":        {"日時", "Time"},
	"hist.actor":       {"操作者", "Actor"},
	"hist.action":      {"操作", "Action"},
	"hist.object":      {"対象", "Object"},
	"hist.from":        {"接続元", "From"},
	"hist.result":      {"結果", "Result"},
	"hist.detail":      {"詳細", "Detail"},
	"hist.filter":      {"絞り込み", "Filter"},
	"hist.export":      {"CSV出力", "Export CSV"},
	"alert.title":      {"警報", "Alerts"},
	"alert.kind":       {"種類", "Kind"},
	"alert.severity":   {"重要度", "Severity"},
	"alert.subject":    {"対象", "Subject"},
	"alert.ack":        {"確認", "Acknowledge"},
	"common.submit":    {"送信", "Submit"},
	"common.none":      {"ありません。", "None."},
	"common.lang":      {"English", "日本語"},
	"role.admin":       {"システム管理者", "System administrator"},
	"role.security":    {"セキュリティ責任者", "Security officer"},
	"role.operator":    {"運用担当者", "Operator"},
	"role.auditor":     {"監査人", "Auditor"},
	"role.datauser":    {"データ利用者", "Data user"},
	"state.invited":    {"招待済み", "invited"},
	"state.registered": {"承認待ち", "awaiting approval"},
	"state.active":     {"有効", "active"},
	"state.locked":     {"ロック中", "locked"},
	"state.disabled":   {"無効", "disabled"},
}

// msg returns the text of key in lang ("ja" or "en"); an unknown key is
// returned as is so that a missing text shows, not breaks, a page.
func msg(lang, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if lang == "en" {
		return m[1]
	}
	return m[0]
}

// lang is the request's language: ?lang= sets it, the cookie keeps it,
// Japanese otherwise.
func (c *Console) lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "ja" {
		return l
	}
	if ck, err := r.Cookie(langCookie); err == nil && (ck.Value == "en" || ck.Value == "ja") {
		return ck.Value
	}
	return "ja"
}

func itoa(n int) string { return strconv.Itoa(n) }

// funcs are the templates' helpers.
func funcs() template.FuncMap {
	return template.FuncMap{
		"t": msg,
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(jst).Format("2006-01-02 15:04:05")
		},
		"date": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.In(jst).Format("2006-01-02")
		},
		"svg": func(b []byte) template.HTML {
			// svgchart escapes every text it draws.
			return template.HTML(b) //nolint:gosec // generated by svgchart, all text escaped
		},
		"list": func(xs ...string) []string { return xs },
		"join": func(xs []string) string {
			out := ""
			for i, x := range xs {
				if i > 0 {
					out += ", "
				}
				out += x
			}
			return out
		},
	}
}
