// Counts the images that actually decoded, so a headless browser can check
// the page (data-images-loaded / data-images-total on <body>). The page needs
// no script otherwise.
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; });
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded.length));
});
