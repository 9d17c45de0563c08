// The login link carries the key in its fragment (never sent to the server or its logs):
// put it in the form and submit it.
(function () {
  "use strict";
  var form = document.getElementById("login-form");
  var key = window.location.hash.replace(/^#(key=)?/, "");
  if (!form || !key) { return; }
  history.replaceState(null, "", window.location.pathname + window.location.search);
  form.elements.key.value = decodeURIComponent(key);
  form.submit();
})();
