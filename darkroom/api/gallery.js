// The gallery page's next pages, fetched as JSON while the client scrolls and appended
// as the page itself renders a file (gallery.py). Without this script the page's
// "More photos" link opens the next page instead. Text goes in as text, never as HTML.
"use strict";

(function () {
  var gallery = document.querySelector("ul.gallery");
  var more = document.querySelector("a.more");
  if (!gallery || !more || !window.fetch || !window.IntersectionObserver) {
    return;
  }
  var loading = false;

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function size(n) {
    var units = ["B", "KB", "MB", "GB"];
    var value = n;
    for (var i = 0; i < units.length; i++) {
      if (value < 1000 || i === units.length - 1) {
        return i === 0 ? value.toFixed(0) + " B" : value.toFixed(1) + " " + units[i];
      }
      value /= 1000;
    }
    return n + " B";
  }

  function pixels(r) {
    return (r.width || 0) * (r.height || 0);
  }

  function item(file) {
    var figure = element("figure");
    var preview = file.preview_url
      ? element("img", { src: file.preview_url, alt: file.name, loading: "lazy" })
      : document.createTextNode("View");
    if (file.page_url) {
      // As gallery.py's _item: the viewer's image and the download of the largest.
      var link = element("a", { class: "view", href: file.page_url });
      var shown = file.renditions.filter(function (r) {
        return r.rendition === file.view_rendition;
      })[0];
      if (shown) {
        var keep = file.renditions.reduce(function (a, b) {
          return pixels(b) > pixels(a) ? b : a;
        });
        link.setAttribute("data-image", shown.url);
        link.setAttribute("data-download", keep.download_url);
        link.setAttribute("data-filename", keep.filename);
        link.setAttribute("data-label", keep.label);
      }
      link.appendChild(preview);
      figure.appendChild(link);
    } else if (file.preview_url) {
      figure.appendChild(preview);
    }
    figure.appendChild(element("figcaption", {}, file.name));
    var links = element("ul");
    file.renditions.forEach(function (r) {
      var line = element("li");
      line.appendChild(element("a", { href: r.url }, r.label));
      line.appendChild(document.createTextNode(" "));
      line.appendChild(
        element(
          "span",
          {},
          (r.width || "?") + "\u00d7" + (r.height || "?") + " px, " + size(r.bytes || 0)
        )
      );
      line.appendChild(document.createTextNode(" "));
      line.appendChild(
        element(
          "a",
          {
            href: r.download_url,
            download: r.filename,
            "aria-label": "Download " + r.label + ": " + file.name,
          },
          "Download"
        )
      );
      links.appendChild(line);
    });
    figure.appendChild(links);
    var entry = element("li", { "data-name": file.name });
    entry.appendChild(figure);
    return entry;
  }

  var observer = new IntersectionObserver(
    function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) {
        load();
      }
    },
    { rootMargin: "800px 0px" }
  );

  function load() {
    if (loading) {
      return;
    }
    loading = true;
    fetch(more.href, {
      headers: { Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (page) {
        page.files.forEach(function (file) {
          var entry = item(file);
          gallery.appendChild(entry);
          // For what else the page adds to a photo (proofing.js's favourite form).
          entry.dispatchEvent(new CustomEvent("darkroom:photo", { bubbles: true, detail: file }));
        });
        // The viewer, open on the last photo, waits for the next one.
        gallery.dispatchEvent(new CustomEvent("gallery:more"));
        if (page.next_cursor) {
          var next = new URL(more.href);
          next.searchParams.set("cursor", page.next_cursor);
          more.href = next.toString();
          loading = false;
          // Still in view (a short page, a tall window): observing anew reports it.
          observer.unobserve(more);
          observer.observe(more);
        } else {
          observer.disconnect();
          more.remove();
        }
      })
      .catch(function () {
        loading = false;
        more.textContent = "More photos (try again)";
        // The viewer, waiting for this page, stops waiting.
        gallery.dispatchEvent(new CustomEvent("gallery:more"));
      });
  }

  more.addEventListener("click", function (event) {
    event.preventDefault();
    load();
  });
  observer.observe(more);
})();
