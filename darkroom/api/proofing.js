// A proofing gallery's favourites without leaving the page: each photo's form (which
// works without this script, posting and coming back) is sent as JSON instead, PUT to
// mark with the note, DELETE to unmark, and the form is redrawn from the answer.
(function () {
  "use strict";

  function label(form, marked) {
    var mark = form.querySelector("p.mark");
    if (mark) mark.textContent = marked ? "\u2605 Favourite" : "\u2606 Not a favourite";
    form.setAttribute("data-favourite", marked ? "1" : "0");
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) {
      b.remove();
    });
    function button(text, value, cls) {
      var b = document.createElement("button");
      b.type = "submit";
      b.name = "favourite";
      b.value = value;
      b.textContent = text;
      if (cls) b.className = cls;
      form.appendChild(b);
    }
    if (marked) {
      button("Save note", "1");
      button("Remove from favourites", "0", "unmark");
    } else {
      button("Add to favourites", "1");
    }
  }

  function say(form, text) {
    var mark = form.querySelector("p.mark");
    if (mark) mark.textContent = text;
  }

  // A photo gallery.js appended as the client scrolled: the same form the page renders
  // (gallery.py's _proofing), built from the page's JSON, text as text.
  document.addEventListener("darkroom:photo", function (event) {
    var file = event.detail;
    var figure = event.target.querySelector("figure");
    var here = document.querySelector("form.proof");
    if (!figure || !here || !file || !file.name) return;
    var share = here.action.slice(0, here.action.lastIndexOf("/favourites/"));
    var form = document.createElement("form");
    form.className = "proof";
    form.method = "post";
    form.action = share + "/favourites/" + encodeURIComponent(file.name);
    var mark = document.createElement("p");
    mark.className = "mark";
    mark.setAttribute("role", "status");
    form.appendChild(mark);
    var id = "n-" + Math.random().toString(36).slice(2);
    var text = document.createElement("label");
    text.htmlFor = id;
    text.textContent = "Note for the photographer";
    form.appendChild(text);
    var note = document.createElement("textarea");
    note.id = id;
    note.name = "note";
    note.rows = 2;
    note.maxLength = 500;
    note.value = (file.favourite && file.favourite.note) || "";
    form.appendChild(note);
    figure.appendChild(form);
    label(form, !!file.favourite);
  });

  // Sends a form's choice (want "1" marks with its note, "0" unmarks) and redraws the
  // form from the answer; resolves true once saved. The gallery's forms and the
  // viewer's toggle both go through here, so both always show what the server kept.
  function send(form, want) {
    var note = form.querySelector("textarea");
    var init = { method: want === "1" ? "PUT" : "DELETE", headers: { Accept: "application/json" } };
    if (want === "1") {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ note: note && note.value.trim() ? note.value : null });
    }
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) {
      b.disabled = true;
    });
    return fetch(form.action, init)
      .then(function (answer) {
        if (answer.ok) {
          label(form, want === "1");
          if (want === "0" && note) note.value = "";
          return true;
        }
        return answer.json().then(function (body) {
          label(form, form.getAttribute("data-favourite") === "1");
          say(form, body.message || "Not saved; please try again.");
          return false;
        });
      })
      .catch(function () {
        label(form, form.getAttribute("data-favourite") === "1");
        say(form, "Not saved (no connection); please try again.");
        return false;
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("proof") || !window.fetch) return;
    event.preventDefault();
    send(form, event.submitter && event.submitter.value === "0" ? "0" : "1");
  });

  // The full-window viewer (viewer.js) shows one photo at a time: its toolbar gets a
  // favourite toggle for that photo, which drives the photo's own form in the gallery,
  // so the two never disagree.
  var viewer = document.querySelector(".viewer");
  var actions = viewer && viewer.querySelector(".viewer-actions");
  if (!actions || !window.fetch) return;
  var toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "viewer-favourite";
  toggle.hidden = true;
  var status = document.createElement("span");
  status.className = "viewer-saved";
  status.setAttribute("role", "status");
  actions.insertBefore(toggle, actions.firstChild);
  actions.insertBefore(status, toggle);
  var shown = null; // the form of the photo on show

  function formOf(name) {
    var items = document.querySelectorAll("ul.gallery li[data-name]");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-name") === name) {
        return items[i].querySelector("form.proof");
      }
    }
    return null;
  }

  function draw() {
    var marked = !!shown && shown.getAttribute("data-favourite") === "1";
    toggle.hidden = !shown;
    toggle.setAttribute("aria-pressed", marked ? "true" : "false");
    toggle.textContent = marked ? "\u2605 Favourite" : "\u2606 Add to favourites";
  }

  viewer.addEventListener("viewer:show", function (event) {
    shown = formOf(event.detail && event.detail.name);
    status.textContent = "";
    draw();
  });

  // While a write is on its way the toggle ignores clicks rather than being disabled:
  // a disabled button drops the keyboard's focus out of the dialog.
  toggle.addEventListener("click", function () {
    var form = shown;
    if (!form || toggle.getAttribute("aria-busy") === "true") return;
    var want = form.getAttribute("data-favourite") === "1" ? "0" : "1";
    toggle.setAttribute("aria-busy", "true");
    status.textContent = "";
    send(form, want).then(function (saved) {
      toggle.removeAttribute("aria-busy");
      if (form !== shown) return; // the client stepped on meanwhile
      draw();
      if (!saved) {
        var mark = form.querySelector("p.mark");
        status.textContent = (mark && mark.textContent) || "Not saved; please try again.";
      }
    });
  });
})();
