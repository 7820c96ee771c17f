"""The HTML report's one style sheet and one script, and the Content-Security-Policy that
admits exactly these two (by their sha256) and nothing else."""

from __future__ import annotations

import base64
import hashlib

_CSS = """
*{box-sizing:border-box}
[hidden]{display:none!important}
body{font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;margin:0 auto;padding:1em 1.5em;
 max-width:80em;color:#1d1d1f;background:#fff}
header.top{background:#1f3a5f;color:#fff;margin:-1em -1.5em 1em;padding:1em 1.5em}
header.top h1{margin:0 0 .3em;font-size:1.5em}
header.top p{margin:0}
h2{font-size:1.15em;border-bottom:1px solid #c8c8c8;padding-bottom:.2em;margin:1.4em 0 .5em}
table{border-collapse:collapse;margin:.4em 0 1em}
td,th{border-bottom:1px solid #d7d7d7;padding:.25em .5em;text-align:left;vertical-align:top;
 overflow-wrap:anywhere}
th{background:#ebeff5}
#files td,#files th{overflow-wrap:normal}
#files td:first-child{min-width:18em;width:35%;overflow-wrap:anywhere}
#files .num,#files td:nth-child(2){white-space:nowrap}
.wide{overflow-x:auto}
#files td.number{overflow-wrap:normal;min-width:7em}
td.num,th.num{text-align:right}
.valid{color:#176b2c}.invalid{color:#b00020}.unreadable{color:#7b1fa2}
.badge{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.85em;
 font-weight:bold;border:1px solid currentColor}
#filters{position:sticky;top:0;background:#f6f8fb;border:1px solid #d7dde6;padding:.5em .8em;
 margin:1em 0;z-index:1}
#filters label{margin-right:1em;white-space:nowrap}
#filters button{margin-left:.5em}
details.file{scroll-margin-top:4em;border:1px solid #d7dde6;border-radius:4px;margin:.6em 0;
 background:#fff}
details.file>summary{cursor:pointer;padding:.45em .8em;background:#f6f8fb;overflow-wrap:anywhere}
details.file[open]>summary{border-bottom:1px solid #d7dde6}
details.file .body{padding:.5em 1em 1em}
.path{font-weight:bold}
.kind,.counts,.muted{color:#5a5a5a;font-size:.9em}
.invoice h3{font-size:1.2em;margin:.6em 0 .3em}
dl.pairs{display:grid;grid-template-columns:minmax(8em,16em) 1fr;gap:.1em 1em;margin:0 0 .4em}
dl.pairs dt{font-weight:bold;color:#5a5a5a}
dl.pairs dd{margin:0;white-space:pre-line;overflow-wrap:anywhere}
.parties{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}
.parties h4{margin:.6em 0 .2em;font-size:1em;color:#5a5a5a}
.parties p{margin:0;white-space:pre-line;overflow-wrap:anywhere}
.parties p.name{font-weight:bold}
.invoice table{width:100%}
.invoice td{white-space:pre-line}
.RIGHT{text-align:right}.CENTER{text-align:center}.LEFT{text-align:left}
table.totals{width:auto;margin-left:auto}
table.totals td{border:none;padding:.1em .5em}
table.totals tr.strong td{font-weight:bold}
tr.flagged>td{background:#fff1f1}
tr.pins>td{border-bottom:1px solid #d7d7d7;padding:0 .5em .4em 2em}
.pins{margin:.2em 0}
.finding{margin:.35em 0;padding:.3em .7em;border-left:4px solid #999;background:#fafafa}
.finding.fatal{border-color:#b00020;background:#fff5f5}
.finding.warning{border-color:#e6a100;background:#fffaf0}
.finding.information{border-color:#2979ff;background:#f4f8ff}
.finding p,.finding ul{margin:.15em 0}
.finding ul{padding-left:1.2em}
.sev{font-weight:bold;text-transform:uppercase;font-size:.75em;letter-spacing:.03em}
.fatal .sev{color:#b00020}.warning .sev{color:#8a5d00}.information .sev{color:#1a56c4}
.loc{color:#5a5a5a;font-size:.88em}
.values{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.88em}
.hint{color:#176b2c}
code{font-size:.9em;overflow-wrap:anywhere}
footer{margin-top:2em;color:#5a5a5a;font-size:.85em}
""".strip()

# Filtering: severity checkboxes and a rule list; a finding shows when both allow it. A pinned
# block or line row with nothing left to show is hidden, and with one rule chosen the files
# without it are hidden and the others opened. Without JavaScript the form stays hidden and
# every finding is shown.
_SCRIPT = """
(function(){
'use strict';
var form=document.getElementById('filters'),select=document.getElementById('rule-filter');
var boxes=Array.prototype.slice.call(document.querySelectorAll('input[data-severity]'));
var files=Array.prototype.slice.call(document.querySelectorAll('details.file'));
var count=document.getElementById('shown-count');
function apply(){
 var shown={},rule=select.value,total=0;
 boxes.forEach(function(b){shown[b.getAttribute('data-severity')]=b.checked;});
 files.forEach(function(file){
  var n=0;
  file.querySelectorAll('.finding').forEach(function(f){
   var ok=shown[f.getAttribute('data-severity')]&&(!rule||f.getAttribute('data-rule')===rule);
   f.hidden=!ok;if(ok){n+=Number(f.getAttribute('data-count'));}});
  file.querySelectorAll('.pins').forEach(function(p){
   p.hidden=!p.querySelector('.finding:not([hidden])');});
  file.hidden=!!rule&&n===0;
  if(rule&&n){file.open=true;}
  total+=n;});
 count.textContent=String(total);
}
form.addEventListener('submit',function(e){e.preventDefault();});
boxes.concat([select]).forEach(function(el){el.addEventListener('change',apply);});
document.getElementById('expand').addEventListener('click',function(){
 files.forEach(function(f){f.open=true;});});
document.getElementById('collapse').addEventListener('click',function(){
 files.forEach(function(f){f.open=false;});});
function reveal(){
 var target=location.hash&&document.getElementById(location.hash.slice(1));
 if(target&&target.tagName==='DETAILS'){target.open=true;}}
window.addEventListener('hashchange',reveal);
form.hidden=false;
document.getElementById('nojs').hidden=true;
reveal();
apply();
})();
""".strip()


def _sha256(source: str) -> str:
    return base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")


# Only our style and script, by hash; nothing else is loaded, run, framed or submitted.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_sha256(_CSS)}'; "
    f"script-src 'sha256-{_sha256(_SCRIPT)}'; img-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
