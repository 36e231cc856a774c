"""What a run tells people: the end-of-run summary, the HTML report and its thumbnails."""
