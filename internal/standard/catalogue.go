package standard

import (
	"strings"
)

// Kind says how an item is established.
type Kind string

// The kinds of item.
const (
	// Automated items are established by checks against configuration
	// and state.
	Automated Kind = "automated"
	// AttestationKind items are organisational: an operator attests them.
	AttestationKind Kind = "attestation"
)

// Item is one numbered item of 第2 to 第6 of the standard.
type Item struct {
	// ID names the item as the standard refers to it: "第4-4-(2)",
	// "第3-2", "第6".
	ID string `json:"id"`
	// Title is the item's heading in the standard (condensed where the
	// item has none of its own).
	Title string `json:"title"`
	// Excerpt quotes the clause: verbatim fragments joined by "…", at
	// most 200 characters.
	Excerpt string `json:"excerpt"`
	// Kind is Automated or AttestationKind.
	Kind Kind `json:"kind"`
	// Checks names the checks of an automated item (see CheckNames);
	// empty for an attestation item.
	Checks []string `json:"checks,omitempty"`
	// Note says, for an automated item, what its checks establish and
	// what they leave to organisational measures; for an attestation
	// item, what the attestation is expected to state.
	Note string `json:"note"`
}

// Names of the checks (see checks.go for what each one does).
const (
	ChkMonitoring     = "monitoring"
	ChkTLS13          = "tls13-only"
	ChkSealing        = "sealing-keys"
	ChkDataPerms      = "data-permissions"
	ChkPolicy         = "peer-policy"
	ChkListenAddrs    = "listener-addresses"
	ChkStray          = "no-stray-listeners"
	ChkIdentity       = "tls-identity"
	ChkCerts          = "certificate-validity"
	ChkConsole        = "console"
	ChkTwoPerson      = "two-person-rule"
	ChkOperatorAuth   = "operator-authentication"
	ChkPIN            = "pin-policy"
	ChkGrants         = "data-use-grants"
	ChkAudit          = "audit-log"
	ChkLockout        = "lockout"
	ChkConsoleLine    = "console-listener"
	ChkKeys           = "key-protection"
	ChkLedger         = "ledger"
	ChkBackup         = "backup"
	ChkBackupMedium   = "backup-medium"
	ChkScanner        = "malware-scanner"
	ChkRetention      = "retention"
	ChkDisk           = "disk-space"
	ChkCertification  = "outsourcer-certification"
	ChkAuthMonitoring = "intrusion-detection"
	ChkRedundancy     = "hub-redundancy"
)

// attest builds an attestation item.
func attest(id, title, excerpt, note string) Item {
	return Item{ID: id, Title: title, Excerpt: excerpt, Kind: AttestationKind, Note: note}
}

// auto builds an automated item.
func auto(id, title, excerpt, note string, checks ...string) Item {
	return Item{ID: id, Title: title, Excerpt: excerpt, Kind: Automated, Checks: checks, Note: note}
}

// catalogue is every numbered item of 第2 to 第6, in the standard's order.
var catalogue = []Item{
	// 第2 体制、規程等の整備
	attest("第2-1-(1)", "責任体制等の確立",
		"国税連携ネットワークシステムの企画、開発、作成、運用保守及び利用に関する責任体制並びに連絡体制を明確にすること。また、防災組織及び防犯組織を整備し、通常時及び非常時の責任体制の確立を図ること。",
		"who is responsible for planning, development, operation and use, the contact chart, and the disaster and crime prevention organisation"),
	attest("第2-1-(2)", "連絡調整を行う場の設置",
		"機構は、国税連携ネットワークシステムのセキュリティ対策に関し、認定委託先事業者、委託利用型地方団体及び単独設置型地方団体と連絡調整を行う場を設けること。",
		"the 機構's coordination forum with outsourcers and local governments (a node's operator attests 該当なし)"),
	auto("第2-1-(3)", "監視体制の整備",
		"機構は、国税連携ネットワークシステムの運用に関し、異常な状態を早期に発見できるよう組織内での迅速かつ適切な報告経路を確保するとともに、認定委託先事業者、委託利用型地方団体及び単独設置型地方団体に連絡することができるよう体制の整備を図ること。",
		"checks that abnormal states can be seen early: the monitoring endpoint is configured and answers; the reporting route itself is part of 第2-1-(1)",
		ChkMonitoring),
	attest("第2-2-(1)", "規程の整備",
		"国税連携ネットワークシステムの企画、開発、作成、運用保守及び利用に関する規程を整備すること。",
		"the rules for planning, development, operation and use are in force"),
	attest("第2-2-(2)", "国税連携ネットワークシステムの設計書等の整備",
		"国税連携ネットワークシステムの設計書、操作手順書等を整備すること。",
		"design documents and operating procedures (docs/operations.ja.md as adapted) are kept up to date"),
	attest("第2-2-(3)", "セキュリティ対策基準等の整備",
		"国税連携ネットワークシステムのセキュリティを確保するために遵守すべきセキュリティ対策基準及び実施手順書を整備すること。",
		"the security standard and procedures (docs/security-procedures.ja.md as adapted) are in force"),
	attest("第2-2-(4)", "国税連携ネットワークシステムの運用継続計画の整備",
		"非常時における国税連携ネットワークシステムの運用継続計画を策定するとともに、非常時におけるセキュリティに係る対策事項を整備すること。",
		"the continuity plan (docs/continuity-plan.ja.md as adapted) and emergency security measures"),
	attest("第2-3-(1)", "要員管理",
		"国税連携ネットワークシステムの運用保守に必要な職員の配置、交替等の人事管理を適切に行うこと。また、プログラムの開発及び国税連携ネットワークシステムの運用保守及び利用の各事務は、同一の者が行うことのないように配慮すること。",
		"staffing and rotation; development, operation and data use are done by different people"),
	attest("第2-3-(2)", "教育及び研修",
		"ア国税連携ネットワークシステムを開発、作成、運用保守又は利用する職員に対し、国税連携ネットワークシステムの操作及びセキュリティ対策についての教育及び研修を実施し、必要な知識を習得させること。",
		"training of every developer, operator and data user (and, for the 機構, technical help to local governments: イ)"),
	attest("第2-3-(3)", "問合せ窓口の設置",
		"機構及び認定委託先事業者は、…誤操作等の発生を防止するため、それぞれ分担して、操作等に関する問い合わせ窓口を設置すること。",
		"a help desk for operators and data users (機構 and outsourcers; others attest 該当なし)"),
	attest("第2-4-(1)", "作動停止時に係る事務処理体制及び訓練",
		"全部又は一部が作動停止した場合…に迅速かつ適正に対応できるよう緊急時対応計画並びに…連絡体制について相互に密接な連携を図り整備すること。イ実際に問題が発生した場合に適切な対応を図ることができるよう訓練を行う",
		"the outage response plan and contact chart, and the date of the last outage drill"),
	attest("第2-4-(2)", "データの漏えいに係る事務処理体制及び訓練",
		"データの漏えいその他これに準ずる事態が発生した場合又は発生のおそれがある場合…緊急時対応計画（国税連携ネットワークシステムの全部又は一部を停止する基準の策定を含む。）…訓練を行う",
		"the leak response plan with the criteria to stop all or part of the network (suspension, incident mode), and the last leak drill"),
	attest("第2-4-(3)", "総務大臣への報告",
		"機構は、…全部又は一部が作動停止した場合又はデータの漏えいその他これに準ずる事態が発生した場合又は発生のおそれがある場合は、速やかに総務大臣に報告すること。",
		"the 機構's procedure to report to the minister (a node's operator attests 該当なし)"),

	// 第3 国税連携ネットワークシステムの環境及び設備
	attest("第3-1-(1)", "建物等への侵入の防止等",
		"国税連携ネットワークシステムに係る建物及び重要機能室（以下「建物等」という。）を国内に設置すること。…建物等の壁、窓、ドア等が容易に破壊されないよう…建物等への侵入を検知・記録するための措置…電力及び電気通信回線の切断等を防止するための措置",
		"buildings in Japan, hardened, intrusion detected and recorded, power and lines protected, outside equipment protected (ア–オ)"),
	attest("第3-1-(2)", "重要機能室の配置及び構造",
		"重要機能室の配置及び構造について、セキュリティ対策及び保守が容易に行えるよう配慮すること。…できるだけ所在を明らかにしないようにすること。…電子計算機室を…区別した部屋とすること。",
		"layout of the critical rooms, unmarked, emergency contact equipment, a separate computer room, few entrances (ア–オ)"),
	attest("第3-2", "障害の防止等",
		"国税連携ネットワークシステムの構成機器並びに関連設備の障害及び損傷を防止し、検知し、並びに障害及び損傷に対する対策を図るため、必要な設備を整備すること。",
		"facilities against failure and damage: power supply, air conditioning, fire and earthquake protection"),
	attest("第3-3-(1)", "専用回線の使用",
		"電気通信回線からのデータの盗取を防止するため、国税庁サーバ、市区町村サーバ、都道府県サーバ及び機構サーバを結ぶ電気通信回線について、専用回線（接続先が固定されており、所定の伝送速度が保証されている回線をいう。以下同じ。）を使用すること。",
		"the dedicated lines (carrier contract) between the servers; taxlink's encryption on them is checked under 第3-3-(2) and 第4-3-(5)"),
	auto("第3-3-(2)", "必要な伝送速度の確保",
		"データを円滑に伝送するために必要な伝送速度を確保するとともに、伝送途上で情報の破壊、盗取、改ざん、消去等が生じないようにセキュリティ対策を講ずること。",
		"checks the protection in transit: TLS 1.3 only on the listeners and end-to-end sealing keys for every tenant; the line's bandwidth is part of the dedicated-line contract (第3-3-(1))",
		ChkTLS13, ChkSealing),

	// 第4 国税連携ネットワークシステムの管理
	attest("第4-1-(1)", "入室資格の付与",
		"重要機能室へ入室できる者を、国税連携ネットワークシステムの運用管理を適正に行うための必要最小限とすること。…入退室の管理を適切に行うこと。",
		"who may enter the critical rooms, and how entry is checked"),
	attest("第4-1-(2)", "鍵又は入退室管理カードの管理",
		"重要機能室の出入口の鍵を所定の場所に保管し、その管理は定められた者が行うこと。…入退室管理カードを利用している場合は、その管理方法を定めること。",
		"keys and entry cards of the critical rooms"),
	attest("第4-1-(3)", "搬出入物品の確認",
		"重要機能室へ物品を搬出入する際、重要機能室に入室する権限を有する職員に搬出入する物品の内容を確認させること。",
		"items carried in and out of the critical rooms are checked"),
	attest("第4-1-(4)", "事務室の管理",
		"事務室における国税連携ネットワークシステムの構成機器、関連設備等の盗難、損壊等を防止するため、職員が不在となる時の事務室の施錠等、必要な措置を講ずること。",
		"offices are locked when empty"),
	attest("第4-2-(1)", "セキュリティを高める設計の実施",
		"国税連携ネットワークシステムの開発、作成又は変更を行う際には、国税連携ネットワークシステムのセキュリティを高めるよう配慮すること。",
		"security is considered in every development and change"),
	attest("第4-2-(2)", "国税連携ネットワークシステムの試験及び検査の実施",
		"障害試験、負荷試験その他必要な試験を適切に実施すること。…別途、試験環境を用意し、試験を行うこと。…整備された検査手順に従い、セキュリティ機能が適切に組み込まれていることの検査を行うこと。",
		"failure and load tests were run (go test, taxlink bench), a separate test environment exists, and the release was inspected on acceptance"),
	attest("第4-2-(3)", "国税連携ネットワークシステムの開発等に際してのエラーの発生及び不正行為の防止",
		"開発、作成又は変更の計画を策定し、開発、作成又は変更の責任者について体制図を作成した上で指定し、及びプログラムの作成、変更又は廃止を行う際には、責任者の承認を得て行う等、エラーの発生及び不正行為の防止のための手続を明確にすること。",
		"change plans, named responsible persons, approvals, standard document forms, documents updated with each change (ア–ウ)"),
	attest("第4-2-(4)", "セキュリティ対策の定期的な見直し",
		"国税連携ネットワークシステムの変更を実施しない場合においても、定期的にセキュリティ対策の変更を行う必要性の有無を検討し、必要があると認められた場合にはその見直しを行い、必要な措置を講ずること。",
		"the date of the last periodic review of the security measures"),
	auto("第4-3-(1)", "アクセス権限の限定",
		"国税連携ネットワークシステムを運用保守又は利用する職員に対して、電子計算機、端末機、電気通信関係装置、電気通信回線、ファイル等に関し、アクセス権限を適切に付与し、適切に管理すること。",
		"checks the file side: the data and backup directories and the console state are closed to group and others, the configuration is not writable by them; console roles and grants are checked under 第4-4",
		ChkDataPerms),
	auto("第4-3-(2)", "ファイアウォールによる通信制御",
		"不正行為又は不正アクセス行為から国税連携ネットワークシステムを保護するため、国税庁サーバ、市区町村サーバ、都道府県サーバ及び機構サーバ間等、必要な部分には、ファイアウォールを設置し、通信制御を行うこと。",
		"checks taxlink's own communication control: the signed directory's deny-by-default peer policy, listeners on explicit addresses, and no listener outside them; a network firewall in front is part of the building and line measures",
		ChkPolicy, ChkListenAddrs, ChkStray),
	attest("第4-3-(3)", "電気通信関係装置の管理",
		"電気通信関係装置の管理に際しては厳重な確認を行う等、管理権限がある者以外の者による操作を防止するための措置を講ずること。また、通信については、電気通信関係装置相互の認証を行うこと。",
		"routers, switches and firewalls: who may administer them, and their mutual authentication"),
	auto("第4-3-(4)", "通信相手との相互認証",
		"国税庁サーバ、市区町村サーバ、都道府県サーバ及び機構サーバそれぞれの間の通信について、通信相手との相互認証を行うこと。",
		"checks the process's TLS identity (certificate chain to the configured CA, identity and environment in it, the peer known to the directory), that revocation lists are configured and current, and that no certificate is about to expire",
		ChkIdentity, ChkCerts),
	auto("第4-3-(5)", "データの暗号化",
		"国税庁サーバ、市区町村サーバ、都道府県サーバ及び機構サーバそれぞれの間の通信について、送信するデータの暗号化を実施すること。",
		"checks TLS 1.3 only on every listener and the end-to-end sealing keys of every hosted tenant",
		ChkTLS13, ChkSealing),
	attest("第4-3-(6)", "模擬攻撃に対する防御訓練の実施",
		"インターネット経由の模擬攻撃を適宜実施し、その実施結果に基づき必要な措置を講ずること。",
		"the date and result of the last simulated attack (taxlink drill attack: not_blocked 0, lost 0) and the measures taken"),
	attest("第4-3-(7)", "情報収集等",
		"セキュリティ対策に関する情報を収集し、分析を行い、必要な措置を講ずること。",
		"security information (advisories, go vulnerability reports for the SBOM) is collected and acted upon"),
	auto("第4-4-(1)", "端末機の管理",
		"端末機の取扱いは、当該端末機の管理を行う責任者の指示又は承認を受けた者に限ること。また、操作者による不正な行為及び誤操作による障害発生を防止するため、端末機を操作する際は複数の者で行うこととすることなど、必要な措置を講ずること。",
		"checks that the terminals are the console (operators enrol only with an approval) and that two active operators can approve, so that dangerous actions take two people",
		ChkConsole, ChkTwoPerson),
	auto("第4-4-(2)", "端末機の操作者の認証",
		"操作者が正当なアクセス権限を付与された者であることを、…操作者識別カード及び暗証番号、生体認証又はこれらと同等以上のものと認められる方法により…確認すること。…端末機の操作が一定時間行われなかった場合に、再度、操作者の認証を行うよう端末機を設定すること。",
		"checks the console's sign-in (WebAuthn with user verification, or smart card and PIN from a valid CA) and idle re-authentication of at most 15 minutes",
		ChkOperatorAuth),
	auto("第4-4-(3)", "暗証番号等の取扱い",
		"暗証番号及び生体認証情報の管理及び運用の方法を定め、操作者に当該管理及び運用の方法を遵守させること。",
		"checks the PIN policy the console enforces (length, history); biometrics stay in the operators' authenticators",
		ChkPIN),
	auto("第4-4-(4)", "ファイルに対する利用制限",
		"端末機の操作者ごとに利用可能なファイルを設定する等、ファイルの利用を制限する方法を定めると。",
		"checks the data users' grants: on a node hosting several tenants no active data user is granted all of them",
		ChkGrants),
	auto("第4-4-(5)", "操作履歴の記録等",
		"機構及び認定委託先事業者は、端末機を操作した履歴を記憶媒体に記録し、各操作者の利用の正当性について確認すること。",
		"checks that the audit log of every operation exists and verifies (signed checkpoints, canonical events); reviewing it is the operators' task",
		ChkAudit),
	auto("第4-4-(6)", "強制的に終了する機能",
		"機構及び認定委託先事業者は、端末機には、複数回アクセスに失敗した場合、強制的に終了する機能を設けること。",
		"checks that the console locks an operator out after at most 10 consecutive failures",
		ChkLockout),
	auto("第4-4-(7)", "専用回線の使用",
		"市区町村サーバ、都道府県サーバ及び機構サーバについて、端末機と相互に接続する電気通信回線は専用回線とすることとし、端末機を他の電気通信回線に接続しないこと。",
		"checks that the console has its own admin listener on an explicit address apart from the service listener, and no other listener exists; the line to the terminals is the operator's",
		ChkConsoleLine, ChkStray),
	auto("第4-5-(1)", "秘密鍵の厳重な管理",
		"通信相手の認証及び送信するデータの暗号化を行うために必要な秘密鍵を厳重に保護し、外部に漏えいすることを防止するための措置を講ずること。",
		"checks every key reference (enc: or pkcs11:; file: only in dev) and that key, passphrase and PIN files are closed to group and others",
		ChkKeys),
	attest("第4-5-(2)", "他のソフトウェアの作動の制限",
		"国税連携ネットワークシステムの管理及び運用保守並びに国税庁、都道府県及び市区町村の資料情報等の相互データ提供の管理及び運用保守に必要なソフトウェア以外のソフトウェアを作動させないよう措置を講ずること。",
		"the servers run nothing but taxlink and what it needs (OS hardening, allow-listing)"),
	auto("第4-5-(3)", "ログの取得及びバックアップの実施",
		"国税連携ネットワークシステムの動作履歴、操作者のアクセス履歴その他運用保守等に必要な情報を記録すること。また、当該情報について、定期的にバックアップすること。",
		"checks the audit log (and the hub's ledger) verifies, and that its backup copy verifies against it and is current",
		ChkAudit, ChkLedger, ChkBackup),
	attest("第4-5-(4)", "記録の消去",
		"市区町村サーバ、都道府県サーバ又は機構サーバを使用しなくなった場合には、当該機器に備えられた記憶媒体からファイル及びドキュメントを復元できない形で消去すること。",
		"the erasure procedure for decommissioned servers and its certificates"),
	attest("第4-6-(1)", "持出し、返却の確認等",
		"可搬記憶媒体の盗難の防止等のため、その保管位置を指定し、持ち出した場合は返却を確認すること。…可搬記憶媒体を廃棄する場合には、消磁、破砕、熔解その他の当該可搬記憶媒体に記録されていたファイル及びドキュメントの復元が不可能となる措置を講ずること。",
		"portable media: where they are kept, check-out and return, destruction"),
	attest("第4-6-(2)", "不正プログラムの混入防止",
		"可搬記憶媒体への不正プログラムの混入防止のため、必要な措置を講ずること。",
		"portable media are scanned before use"),
	attest("第4-7-(1)", "管理方法の明確化",
		"国税連携ネットワークシステムに機器を接続するための手続、方法等を定めるとともに、構成機器及び関連設備等の管理方法を明確にすること。…利用するハードウェア、ソフトウェア及び可搬記憶媒体の種類、数量等を体系的かつ一元的に記録管理し、現況と一致させること。",
		"the procedure to connect equipment and the inventory of hardware, software (taxlink sbom) and media, matching reality"),
	attest("第4-7-(2)", "保守の実施",
		"国税連携ネットワークシステムの構成機器及び関連設備等の保守を定期的に又は随時に、実施すること。また、保守の実施に当たっては、エラーの発生及び不正行為を防止し、データを保護するため、必要な措置を講ずること。",
		"maintenance schedule and how data is protected during maintenance"),
	auto("第4-7-(3)", "稼働状況の監視",
		"それぞれ分担して、市区町村サーバ、都道府県サーバ、機構サーバ及び電気通信関係機器の稼働状況を常時監視し、必要に応じ対策を実施すること。",
		"checks that the monitoring endpoint is configured and, when the process runs, answers /healthz; watching it is the operators' task",
		ChkMonitoring),
	auto("第4-7-(4)", "不正プログラムの混入防止等",
		"国税連携ネットワークシステムにコンピュータウイルス等の不正プログラムが混入されていないかどうかを監視する措置を講じ、混入されていた場合には駆除する措置を講ずること。",
		"checks that a node scans every received payload (scanner configured, clamd answers); the hub never holds a payload in the clear",
		ChkScanner),
	auto("第4-8-(1)", "データ等の管理方法",
		"データ、プログラム及びドキュメントの使用、保管、複写、受渡し、消去及び廃棄について、その取扱い及び管理の方法を定めること。…プログラムの登録及び抹消は、責任者の指示又は承認を受けた者が行うこと。",
		"checks that a node keeps every tenant's records under a retention rule (erased when it expires); handling of programs and paper is organisational",
		ChkRetention),
	attest("第4-8-(2)", "帳票の管理",
		"帳票の受渡し及び廃棄の方法を定めること。…事務室の出力装置から出力する場合のデータの漏えいを防止するため、必要な措置を講ずること。",
		"printed forms: hand-over, disposal, printers in the office (the console's prints are watermarked and audited)"),
	auto("第4-9-(1)", "国税連携ネットワークシステムの障害の早期発見",
		"国税連携ネットワークシステムの障害箇所の発見や性能の低下を検知するため、必要な措置を講ずること。",
		"checks the monitoring endpoint and that the data directory has more free space than the configured minimum",
		ChkMonitoring, ChkDisk),
	auto("第4-9-(2)", "早期回復のための代替機能等の整備",
		"重要なファイルについて、記憶媒体に保存するとともに、他の記憶媒体に複製を保存することとし、必要に応じ、それぞれの記憶媒体を別に保管すること。…確実に回復することを、試験により確認すること。",
		"checks that the logs are copied to another medium and that the copies verify and are current, and that the hub runs as replicas (an alternative that takes over); the restore and failover drills (ウ) are to be recorded under 第2-4-(1)",
		ChkBackup, ChkBackupMedium, ChkRedundancy),
	auto("第4-9-(3)", "不正アクセスの早期発見",
		"不正アクセスを早期に発見するため、必要な措置を講ずること。",
		"checks that refused handshakes and sign-in failures reach the audit log and the alerts (audit log, monitoring endpoint, console)",
		ChkAuthMonitoring),
	attest("第4-9-(4)", "不正アクセスが判明した場合の対応",
		"不正アクセスが判明した場合、機構、認定委託先事業者、委託利用型地方団体及び単独設置型地方団体の間で連絡調整を行い、被害状況の把握、被害拡大を防止するための措置等必要な措置を講ずること。",
		"the intrusion response and coordination procedure"),
	attest("第4-9-(5)", "再発防止策の検討",
		"その応急措置を実施するだけでなく、根本原因の究明及び再発防止策について検討を行い、再発防止に努めること。",
		"root-cause analysis and prevention after each incident"),
	attest("第4-9-(6)", "障害等情報の記録と共有",
		"機構は、国税連携ネットワークシステムに係る障害について、その応急措置方法、根本原因の究明及び再発防止策について内容を取りまとめ、認定委託先事業者、委託利用型地方団体及び単独設置型地方団体と情報を共有すること。",
		"the 機構's incident records shared with participants (a node's operator attests 該当なし)"),
	auto("第4-10-(1)", "認定委託先事業者等への委託",
		"認定委託先事業者又は単独設置型地方団体以外の者へは委託を行わないこと。…少なくとも年一回、機構による監査を受けさせ、…委託契約を解除すること。",
		"checks in the signed directory that every node hosting others is run by a certified outsourcer whose certification covers today and whose last audit is at most a year old; the sub-contracting clauses (ウ) are contractual",
		ChkCertification),
	attest("第4-10-(2)", "認定委託先事業者等以外の事業者への委託",
		"委託する事業者の社会的信用及び能力を確認すること。…この基準と同様のセキュリティ対策を実施させるとともに、適切な監督を行うこと。…秘密保持義務、事業所内からの個人情報の持出しの禁止",
		"contracts with other contractors: vetting, supervision, confidentiality and personal-data clauses (ア–エ)"),
	attest("第4-10-(3)", "事務を委託する場合の事業者の分担範囲等の明確化",
		"複数の事業者へ委託する場合、分担して行う範囲及び責任の範囲を明確にするとともに、作業上必要な情報交換を行えるような措置を講ずること。",
		"division of work and responsibility between contractors"),
	attest("第4-10-(4)", "要員派遣を受ける場合等の措置",
		"要員派遣を受ける場合又は非常勤職員、臨時職員等を雇用する場合には、必要に応じ、秘密保持に関する誓約書を提出させる等の措置を講ずること。",
		"confidentiality pledges of temporary and dispatched staff"),
	attest("第4-11-(1)", "自己点検",
		"この基準の遵守並びに国税連携ネットワークシステムの企画、開発、作成、運用保守及び利用の各段階におけるセキュリティ対策について、自己点検を実施し、その結果に基づき改善を図ること。",
		"this self-check was reviewed and the improvements it calls for are planned"),
	attest("第4-11-(2)", "外部監査等の実施",
		"機構は、この基準の遵守並びに国税連携ネットワークシステムの企画、開発及び運用保守の各段階におけるセキュリティ対策について外部監査を実施し、…当該外部監査の結果を、総務大臣に報告するとともに、委託利用型地方団体及び単独設置型地方団体に提供すること。",
		"the date of the last external audit and its report (a node's operator attests 該当なし, or the audit it underwent)"),
	attest("第4-11-(3)", "監査の体制の確立",
		"委託利用型地方団体及び単独設置型地方団体は、それぞれ監査の体制を確立し、…セキュリティ対策の評価を行い、その結果に基づき国税連携ネットワークシステムの改善を図ること。",
		"the local government's own audit organisation"),

	// 第5 他の情報システムとの接続
	attest("第5-1-(1)", "電気通信回線上の盗取の防止",
		"国税連携ネットワークシステムと他の情報システムとの接続に係る電気通信回線は専用回線を用いるとともに、通信データの盗取の防止についての必要な対策を講ずること。",
		"the line to the tax system is dedicated, and the export is encrypted"),
	attest("第5-1-(2)", "ファイアウォールによる通信制御",
		"国税連携ネットワークシステムと他の情報システムとの間にファイアウォールを設置し、国税連携ネットワークシステム上の処理又は他の情報システム上の処理に係る通信のみが可能となるよう通信制御を行うこと。",
		"the firewall between taxlink and the tax system allows only the export"),
	attest("第5-2", "他の情報システムとの接続状況についての連絡調整",
		"機構は、国税連携ネットワークシステムと他の情報システムとの接続状況について認定委託先事業者、委託利用型地方団体及び単独設置型地方団体と連絡調整を行うこと。",
		"the 機構's coordination on connections to other systems (a node's operator attests 該当なし)"),

	// 第6 その他
	attest("第6", "その他",
		"政府機関等の情報セキュリティ対策のための統一基準群及び地方公共団体における情報セキュリティポリシーに関するガイドラインの内容を踏まえ、安全性及び信頼性を確保するために必要な措置を講じなければならない。",
		"the measures of the government's unified standards and the local-government security policy guideline are applied"),
}

// Catalogue returns a copy of every item, in the standard's order.
func Catalogue() []Item {
	out := make([]Item, len(catalogue))
	for i, it := range catalogue {
		it.Checks = append([]string(nil), it.Checks...)
		out[i] = it
	}
	return out
}

// asciiID returns the ASCII short form of an item ID: "第4-4-(2)" is
// "4-4-2", "第6" is "6".
func asciiID(id string) string {
	r := strings.NewReplacer("第", "", "(", "", ")", "", "（", "", "）", "")
	return r.Replace(id)
}

// Lookup returns the item whose ID is id, given either as in the catalogue
// ("第4-4-(2)") or in its ASCII short form ("4-4-2").
func Lookup(id string) (Item, bool) {
	id = strings.TrimSpace(id)
	for _, it := range catalogue {
		if it.ID == id || asciiID(it.ID) == asciiID(id) {
			it.Checks = append([]string(nil), it.Checks...)
			return it, true
		}
	}
	return Item{}, false
}
