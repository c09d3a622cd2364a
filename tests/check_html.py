#!/usr/bin/env python3
"""check_html.py HTML: a pathens report page is self-contained (no scripts, no external resources),
every <svg> is well-formed XML with a <title> and text labels, every plot with axes has a label
with units in parentheses, every figure has one caption. Prints "plots: k1 k2 ..." and
"notes: N"; exits 1 on any error. Used by cli_report.sh and cli_sweep_report.sh."""
import re, sys, xml.etree.ElementTree as ET
html = open(sys.argv[1], encoding='utf-8').read()   # strict UTF-8
errs = []
low = html.lower()
if not low.startswith('<!doctype html>') or '</html>' not in low: errs.append('not a complete HTML document')
for bad in ('<script', 'http://', 'https://', '<link', '<img', '<iframe', '<object', '<embed', '@import', '@font-face', 'javascript:'):
    if bad in low: errs.append('contains ' + bad)
for m in re.finditer(r'\b(src|href|xlink:href)\s*=', low): errs.append('has a %s= attribute' % m.group(1))
for m in re.finditer(r'url\(\s*([^)]*)\)', low):
    if not m.group(1).strip('\'" ').startswith('#'): errs.append('external url(%s)' % m.group(1))
svgs = re.findall(r'<svg\b.*?</svg>', html, re.S)
kinds = []
for i, s in enumerate(svgs):
    try: root = ET.fromstring(s)
    except ET.ParseError as e:
        errs.append('svg %d is not well-formed XML: %s' % (i, e)); continue
    kind = root.get('data-plot', '?'); kinds.append(kind)
    texts = [''.join(t.itertext()) for t in root.iter('text')]
    if len(texts) < 3: errs.append('svg %d (%s) has fewer than 3 text labels' % (i, kind))
    if root.find('title') is None: errs.append('svg %d (%s) has no <title>' % (i, kind))
    if kind != 'heatmap' and not any('(' in t and ')' in t for t in texts):  # every plot with axes
        errs.append('svg %d (%s): no axis label with units in parentheses' % (i, kind))
figs = re.findall(r'<figure>(.*?)</figure>', html, re.S)
for i, f in enumerate(figs):
    cap = re.findall(r'<figcaption>(.*?)</figcaption>', f, re.S)
    if len(cap) != 1 or len(cap[0].strip()) < 20: errs.append('figure %d has no one-line caption' % i)
    if '<svg' not in f: errs.append('figure %d has no svg' % i)
if sum(f.count('<svg') for f in figs) != len(svgs): errs.append('an svg outside a <figure>')
notes = re.findall(r'<p class="note">(.*?)</p>', html, re.S)
for e in errs: print('ERROR', e)
print('plots:', ' '.join(kinds))
print('notes:', len(notes))
sys.exit(1 if errs else 0)
