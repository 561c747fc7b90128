// The gallery's full-window viewer. Each preview is a link to the photo's own page
// (gallery.py), which works without script; this opens the photo in a modal dialog
// instead: arrow keys and swipes step through the gallery in its order (loading its
// next page when the last loaded photo is passed), Escape closes, focus returns to the
// preview. Opening adds a history entry at the photo's own page address (kept on the
// photo shown), so the browser's Back (a phone's back gesture) closes the viewer and a
// reload opens the photo's page. Images load through the stable links the preview
// carries; text goes in as text, never as HTML. The toolbar's .viewer-actions is where other scripts add their
// buttons (a favourite toggle): they listen for "viewer:show" on the dialog.
"use strict";

(function () {
  var gallery = document.querySelector("ul.gallery");
  if (!gallery) {
    return;
  }
  var SWIPE = 40; // CSS pixels a finger must travel sideways to turn the photo

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

  var dialog = element("div", {
    class: "viewer",
    role: "dialog",
    "aria-modal": "true",
    "aria-labelledby": "viewer-title",
    hidden: "",
  });
  var bar = element("div", { class: "viewer-bar" });
  var title = element("h2", { id: "viewer-title" });
  var count = element("span", { class: "viewer-count", "aria-live": "polite" });
  var actions = element("div", { class: "viewer-actions" });
  var download = element("a", { class: "button viewer-download" }, "Download");
  var close = element("button", { type: "button", class: "viewer-close" }, "Close");
  var stage = element("div", { class: "viewer-stage" });
  var image = element("img", { alt: "" });
  // Shown when a photo cannot be loaded (the link withdrawn meanwhile, the network).
  var failed = element(
    "p",
    { class: "viewer-failed", role: "alert", hidden: "" },
    "This photo could not be shown. Try again, or ask your photographer for a new link."
  );
  var previous = element(
    "button",
    { type: "button", class: "viewer-prev", "aria-label": "Previous photo" },
    "\u2039"
  );
  var next = element(
    "button",
    { type: "button", class: "viewer-next", "aria-label": "Next photo" },
    "\u203a"
  );
  actions.appendChild(download);
  actions.appendChild(close);
  bar.appendChild(title);
  bar.appendChild(count);
  bar.appendChild(actions);
  stage.appendChild(image);
  stage.appendChild(failed);
  stage.appendChild(previous);
  stage.appendChild(next);
  dialog.appendChild(bar);
  dialog.appendChild(stage);
  document.body.appendChild(dialog);

  var opener = null; // the preview link the viewer was opened from
  var current = -1;
  var waiting = false; // for the gallery's next page
  var pushed = false; // the viewer's own history entry is the current one

  function links() {
    return Array.prototype.slice.call(gallery.querySelectorAll("a.view[data-image]"));
  }

  function total() {
    var n = parseInt(gallery.getAttribute("data-count"), 10);
    return n > 0 ? n : links().length;
  }

  function more() {
    return document.querySelector("a.more");
  }

  function show(index) {
    var all = links();
    if (index < 0 || index >= all.length) {
      return;
    }
    current = index;
    var link = all[index];
    var name = link.closest("li").getAttribute("data-name") || "";
    title.textContent = name;
    count.textContent = index + 1 + " of " + total();
    image.alt = name;
    failed.hidden = true;
    image.hidden = false;
    image.src = link.getAttribute("data-image");
    download.href = link.getAttribute("data-download");
    download.setAttribute("download", link.getAttribute("data-filename") || "");
    download.textContent = "Download";
    download.setAttribute(
      "aria-label",
      "Download " + (link.getAttribute("data-label") || "") + ": " + name
    );
    if (pushed) {
      // Stepping keeps one entry: Back leaves the viewer, not photo by photo.
      history.replaceState({ viewer: true }, "", link.href);
    }
    previous.disabled = index === 0;
    next.disabled = index === all.length - 1 && !more();
    // Warm the browser's cache with the neighbours: the next step shows at once.
    [all[index - 1], all[index + 1]].forEach(function (near) {
      if (near) {
        new Image().src = near.getAttribute("data-image");
      }
    });
    dialog.dispatchEvent(new CustomEvent("viewer:show", { detail: { name: name, link: link } }));
  }

  function step(by) {
    var all = links();
    var target = current + by;
    if (target >= all.length && more() && !waiting) {
      // Past the last photo loaded: gallery.js loads the next page, then we step.
      waiting = true;
      gallery.addEventListener(
        "gallery:more",
        function () {
          waiting = false;
          if (!dialog.hidden) {
            show(target);
          }
        },
        { once: true }
      );
      more().click();
      return;
    }
    show(target);
  }

  function focusable() {
    return Array.prototype.slice
      .call(dialog.querySelectorAll("a[href], button:not([disabled])"))
      .filter(function (node) {
        return node.offsetParent !== null || node === document.activeElement;
      });
  }

  function open(link) {
    opener = link;
    // Everything else is inert while the dialog is open: no focus, no screen reader.
    Array.prototype.forEach.call(document.body.children, function (node) {
      if (node !== dialog) {
        node.inert = true;
      }
    });
    document.body.classList.add("viewing");
    dialog.hidden = false;
    history.pushState({ viewer: true }, "", link.href);
    pushed = true;
    show(links().indexOf(link));
    close.focus();
  }

  // Closing by the button or Escape shuts at once, then steps back over the viewer's
  // history entry; the browser's own Back shuts it through "popstate".
  var leaving = false;
  var returnTo = null; // the preview focus went back to

  function leave() {
    var had = pushed;
    shut();
    if (had) {
      leaving = true;
      history.back();
    }
  }

  window.addEventListener("popstate", function () {
    if (leaving) {
      leaving = false;
      // The browser may restore the scroll of the entry it returned to: the preview
      // where the client left off stays in view.
      if (returnTo) {
        returnTo.scrollIntoView({ block: "nearest" });
      }
    } else if (!dialog.hidden) {
      shut();
    }
  });

  function shut() {
    pushed = false;
    dialog.hidden = true;
    image.removeAttribute("src");
    document.body.classList.remove("viewing");
    Array.prototype.forEach.call(document.body.children, function (node) {
      node.inert = false;
    });
    // Back to the preview of the photo last shown, where the client left off.
    var all = links();
    var back = all[current] || opener;
    returnTo = back;
    if (back) {
      back.focus();
      back.scrollIntoView({ block: "nearest" });
    }
    current = -1;
  }

  gallery.addEventListener("click", function (event) {
    var link = event.target.closest("a.view[data-image]");
    // A modified click (a new tab) keeps its usual meaning: the photo's page.
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) {
      return;
    }
    event.preventDefault();
    open(link);
  });

  close.addEventListener("click", leave);
  previous.addEventListener("click", function () {
    step(-1);
  });
  next.addEventListener("click", function () {
    step(1);
  });

  document.addEventListener("keydown", function (event) {
    if (dialog.hidden) {
      return;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      leave();
    } else if (event.key === "ArrowLeft") {
      event.preventDefault();
      step(-1);
    } else if (event.key === "ArrowRight") {
      event.preventDefault();
      step(1);
    } else if (event.key === "Tab") {
      // Focus stays in the dialog: from its last control back to its first.
      var nodes = focusable();
      if (!nodes.length) {
        return;
      }
      var first = nodes[0];
      var last = nodes[nodes.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      } else if (!dialog.contains(document.activeElement)) {
        event.preventDefault();
        first.focus();
      }
    }
  });

  // Swipe: one pointer (a finger, or a mouse drag) across the photo.
  var start = null;
  stage.addEventListener("pointerdown", function (event) {
    if (event.target.closest("button")) {
      return;
    }
    start = { id: event.pointerId, x: event.clientX, y: event.clientY };
  });
  stage.addEventListener("pointerup", function (event) {
    if (!start || start.id !== event.pointerId) {
      return;
    }
    var dx = event.clientX - start.x;
    var dy = event.clientY - start.y;
    start = null;
    if (Math.abs(dx) >= SWIPE && Math.abs(dx) > Math.abs(dy)) {
      step(dx < 0 ? 1 : -1);
    }
  });
  stage.addEventListener("pointercancel", function () {
    start = null;
  });
  image.addEventListener("error", function () {
    if (!dialog.hidden && image.getAttribute("src")) {
      image.hidden = true;
      failed.hidden = false;
    }
  });
  // A dragged image would start the browser's own drag instead.
  image.addEventListener("dragstart", function (event) {
    event.preventDefault();
  });
})();
