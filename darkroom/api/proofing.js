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

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("proof") || !window.fetch) return;
    event.preventDefault();
    var want = event.submitter && event.submitter.value === "0" ? "0" : "1";
    var note = form.querySelector("textarea");
    var init = { method: want === "1" ? "PUT" : "DELETE", headers: { Accept: "application/json" } };
    if (want === "1") {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ note: note && note.value.trim() ? note.value : null });
    }
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) {
      b.disabled = true;
    });
    fetch(form.action, init)
      .then(function (answer) {
        if (answer.ok) {
          label(form, want === "1");
          if (want === "0" && note) note.value = "";
          return;
        }
        return answer.json().then(function (body) {
          label(form, form.getAttribute("data-favourite") === "1");
          say(form, body.message || "Not saved; please try again.");
        });
      })
      .catch(function () {
        label(form, form.getAttribute("data-favourite") === "1");
        say(form, "Not saved (no connection); please try again.");
      });
  });
})();
