// A small, safe Markdown renderer for model-written text (the synthesis).
// It builds elements with createElement/textContent only: raw HTML stays visible text,
// links are not clickable (their target is shown as text, so nothing is fetched or run),
// images become their alt text. Headings, paragraphs, lists, quotes, code, **bold**,
// *italic* and `code` are formatted.
"use strict";

const MARKDOWN_INLINE_LIMIT = 5000; // longer paragraphs are shown as plain text (keeps regexes cheap)
const MARKDOWN_INLINE = new RegExp(
  [
    "`([^`\\n]+)`",                                   // 1 code
    "!\\[([^\\]\\n]*)\\]\\(((?:[^()\\s]|\\([^()\\s]*\\))*)(?:\\s[^()\\n]*)?\\)",  // 2 alt, 3 target (one level of parentheses)
    "\\[([^\\]\\n]+)\\]\\(((?:[^()\\s]|\\([^()\\s]*\\))*)(?:\\s[^()\\n]*)?\\)",   // 4 text, 5 target
    "\\*\\*([^*\\n]+)\\*\\*",                         // 6 bold
    "(?<![A-Za-z0-9_.])__([^_\\n]+)__(?![A-Za-z0-9_])", // 7 bold (not inside names like a.__b__)
    "\\*([^*\\s][^*\\n]*)\\*",                        // 8 italic
    "(?<![A-Za-z0-9_.])_([^_\\s][^_\\n]*)_(?![A-Za-z0-9_])", // 9 italic
  ].join("|"),
  "g",
);

function markdownNode(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A link's target as inert text: "example.com/x" style, with the scheme kept visible
// and dots bracketed so nothing turns it back into a link.
function defang(target) {
  return target.replace(/\./g, "[.]").replace(/^([a-z][a-z0-9+.-]*):/i, "$1[:]");
}

function appendInline(parent, text, depth) {
  if (depth > 4 || text.length > MARKDOWN_INLINE_LIMIT) { parent.append(text); return; }
  let last = 0;
  for (const m of text.matchAll(MARKDOWN_INLINE)) {
    parent.append(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[1] !== undefined) parent.append(markdownNode("code", "", m[1]));
    else if (m[2] !== undefined) parent.append(markdownNode("span", "md-image", "[image: " + (m[2] || "untitled") + "]"));
    else if (m[4] !== undefined) {
      const link = markdownNode("span", "md-link");
      appendInline(link, m[4], depth + 1);
      parent.append(link);
      if (m[5]) parent.append(markdownNode("span", "md-target", " (" + defang(m[5]) + ")"));
    } else {
      const bold = m[6] !== undefined ? m[6] : m[7];
      const node = markdownNode(bold !== undefined ? "strong" : "em");
      appendInline(node, bold !== undefined ? bold : m[8] !== undefined ? m[8] : m[9], depth + 1);
      parent.append(node);
    }
  }
  parent.append(text.slice(last));
}

function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) {
      const p = markdownNode("p");
      appendInline(p, paragraph.join(" "), 0);
      fragment.append(p);
      paragraph = [];
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)/);
    if (fence) {
      flush(); list = null;
      const code = [];
      while (++i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i]);
      const pre = markdownNode("pre");
      pre.append(markdownNode("code", "", code.join("\n")));
      fragment.append(pre);
      continue;
    }
    if (!line.trim()) { flush(); list = null; continue; }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    const item = line.match(/^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/);
    const quote = line.match(/^\s*>\s?(.*)$/);
    if (heading) {
      flush(); list = null;
      const h = markdownNode("h" + Math.min(6, heading[1].length + 2), "md-heading");
      appendInline(h, heading[2], 0);
      fragment.append(h);
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flush(); list = null;
      fragment.append(markdownNode("hr"));
    } else if (item) {
      flush();
      const tag = item[1] ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== tag) { list = markdownNode(tag); fragment.append(list); }
      const li = markdownNode("li");
      appendInline(li, item[3], 0);
      list.append(li);
    } else if (quote) {
      flush(); list = null;
      const block = markdownNode("blockquote");
      appendInline(block, quote[1], 0);
      fragment.append(block);
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return fragment;
}
