// The example browser of a `genies site` page. Examples come from chunk files (`<split>-NNNN.js`, each one
// call to geniesSite.chunk(key, rows)) loaded with <script> elements, which work from file:// where fetch()
// does not. Example text is data: it is only ever written with textContent, never parsed as markup.
"use strict";

(function () {
  const COLLAPSE_CHARS = 700;
  const waiting = new Map();
  const loaded = new Map();

  window.geniesSite = {
    chunk(key, rows) {
      const resolve = waiting.get(key);
      waiting.delete(key);
      if (resolve) resolve(rows);
    },
  };

  function loadChunk(dist, base, split, index) {
    const key = `${dist}/${split}/${index}`;
    if (!loaded.has(key)) {
      loaded.set(key, new Promise((resolve, reject) => {
        waiting.set(key, resolve);
        const script = document.createElement("script");
        script.src = `${base}/${split}-${String(index).padStart(4, "0")}.js`;
        script.onerror = () => reject(new Error(`could not load ${script.src}`));
        document.head.appendChild(script);
      }));
    }
    return loaded.get(key);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function collapsible(text) {
    const wrap = element("div", "text-wrap");
    const body = element("div", "text", text);
    wrap.appendChild(body);
    if (text.length > COLLAPSE_CHARS) {
      body.classList.add("collapsed");
      const toggle = element("button", "toggle", `Show all ${text.length} characters`);
      toggle.type = "button";
      toggle.setAttribute("aria-expanded", "false");
      toggle.addEventListener("click", () => {
        const open = body.classList.toggle("collapsed") === false;
        toggle.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "Show less" : `Show all ${text.length} characters`;
      });
      wrap.appendChild(toggle);
    }
    return wrap;
  }

  function facts(pairs) {
    const list = element("dl", "example-facts");
    for (const [term, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      const row = element("div");
      row.appendChild(element("dt", "", term));
      row.appendChild(element("dd", "", typeof value === "string" ? value : JSON.stringify(value)));
      list.appendChild(row);
    }
    return list;
  }

  function renderExample(row, number, headingLevel) {
    const article = element("article", "example");
    article.dataset.id = row.id;
    const heading = element(`h${headingLevel}`, "", `Example ${number}`);
    article.appendChild(heading);
    const provenance = Object.entries(row.provenance || {}).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
    article.appendChild(facts([["id", row.id], ["group", row.group], ["provenance", provenance.join("; ")]]));
    const prompt = element("section", "prompt");
    prompt.appendChild(element(`h${headingLevel + 1}`, "", "Prompt"));
    prompt.appendChild(collapsible(row.prompt || ""));
    article.appendChild(prompt);
    const responses = element("ol", "responses");
    responses.setAttribute("aria-label", `${row.responses.length} responses`);
    row.responses.forEach((text, position) => {
      const preferred = position === row.preferred;
      const item = element("li", preferred ? "response preferred" : "response");
      const label = element(`h${headingLevel + 1}`, "", `Response ${position + 1} of ${row.responses.length}`);
      if (preferred) label.appendChild(element("span", "badge preferred-badge", "preferred"));
      item.appendChild(label);
      item.appendChild(collapsible(text));
      responses.appendChild(item);
    });
    article.appendChild(responses);
    if (row.meta && row.meta !== "{}") {
      const meta = element("details", "meta");
      meta.appendChild(element("summary", "", "meta"));
      meta.appendChild(element("pre", "", row.meta));
      article.appendChild(meta);
    }
    return article;
  }

  function matches(row, needle) {
    const texts = [row.id, row.group, row.prompt, ...row.responses];
    return texts.some((t) => typeof t === "string" && t.toLowerCase().includes(needle));
  }

  class ExampleBrowser {
    constructor(root) {
      this.root = root;
      this.dist = JSON.parse(root.dataset.dist);
      this.base = JSON.parse(root.dataset.base);
      this.chunks = JSON.parse(root.dataset.chunks);
      this.rows = JSON.parse(root.dataset.rows);
      this.limit = Number(root.dataset.limit) || 0;
      this.headingLevel = Number(root.dataset.headingLevel) || 3;
      this.list = root.querySelector(".example-list");
      this.status = root.querySelector(".browser-status");
      this.splitSelect = root.querySelector(".split-select");
      this.searchInput = root.querySelector(".search-input");
      this.pageLabel = root.querySelector(".page-label");
      this.prevButton = root.querySelector(".prev");
      this.nextButton = root.querySelector(".next");
      this.split = root.dataset.split || Object.keys(this.chunks)[0];
      this.page = 0;
      this.query = "";
      this.matched = null;
      this.generation = 0;
      this.bind();
    }

    bind() {
      this.splitSelect.value = this.split;
      this.splitSelect.addEventListener("change", () => {
        this.split = this.splitSelect.value;
        this.page = 0;
        this.refresh();
      });
      const form = this.root.querySelector(".search-form");
      if (form) {
        form.addEventListener("submit", (event) => {
          event.preventDefault();
          this.search(this.searchInput.value);
        });
        const initial = new URLSearchParams(window.location.search).get("q");
        if (initial) this.searchInput.value = initial;
        this.query = (initial || "").trim().toLowerCase();
      }
      if (this.prevButton) this.prevButton.addEventListener("click", () => this.turn(-1));
      if (this.nextButton) this.nextButton.addEventListener("click", () => this.turn(1));
    }

    search(text) {
      this.query = text.trim().toLowerCase();
      this.page = 0;
      this.refresh();
    }

    turn(step) {
      this.page = Math.min(Math.max(this.page + step, 0), this.pageCount() - 1);
      this.refresh().then(() => this.list.focus());
    }

    pageSize() {
      return this.limit || 50;
    }

    pageCount() {
      const total = this.matched ? this.matched.length : this.rows[this.split] || 0;
      return Math.max(1, Math.ceil(total / this.pageSize()));
    }

    async allRows() {
      const count = this.chunks[this.split] || 0;
      const chunks = await Promise.all([...Array(count).keys()].map((i) => loadChunk(this.dist, this.base, this.split, i)));
      return chunks.flat();
    }

    async pageRows() {
      if (this.query) {
        const rows = await this.allRows();
        this.matched = rows.filter((row) => matches(row, this.query));
        return this.matched.slice(this.page * this.pageSize(), (this.page + 1) * this.pageSize());
      }
      this.matched = null;
      if (!this.chunks[this.split]) return [];
      const rows = await loadChunk(this.dist, this.base, this.split, this.page);
      return this.limit ? rows.slice(0, this.limit) : rows;
    }

    async refresh() {
      const generation = ++this.generation;
      this.root.setAttribute("aria-busy", "true");
      this.status.textContent = "Loading examples…";
      let rows;
      try {
        rows = await this.pageRows();
      } catch (error) {
        this.status.textContent = `Examples could not be loaded: ${error.message}`;
        this.root.removeAttribute("aria-busy");
        return;
      }
      if (generation !== this.generation) return;
      const first = this.page * this.pageSize();
      this.list.replaceChildren(...rows.map((row, i) => renderExample(row, first + i + 1, this.headingLevel)));
      this.status.textContent = this.describe(rows.length, first);
      if (this.pageLabel) this.pageLabel.textContent = `Page ${this.page + 1} of ${this.pageCount()}`;
      if (this.prevButton) this.prevButton.disabled = this.page === 0;
      if (this.nextButton) this.nextButton.disabled = this.page >= this.pageCount() - 1;
      this.root.dataset.shown = String(rows.length);
      this.root.removeAttribute("aria-busy");
    }

    describe(shown, first) {
      const total = this.rows[this.split] || 0;
      if (this.matched) {
        const found = this.matched.length;
        const range = found > shown ? ` (showing ${first + 1}–${first + shown})` : "";
        return `${found} of ${total} ${this.split} examples match “${this.query}”${range}`;
      }
      if (!shown) return `No ${this.split} examples.`;
      return `Showing ${first + 1}–${first + shown} of ${total} ${this.split} examples`;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const root of document.querySelectorAll(".example-browser")) new ExampleBrowser(root).refresh();
  });
})();
