! ex_as_completed.f90 — "submit and use as completed" from Fortran: submit
! ten tasks, handle each result as soon as its task finishes (Python's
! concurrent.futures.as_completed).
module as_completed_kernels
  use, intrinsic :: iso_c_binding
  use ppool
  implicit none
  interface
    integer(c_int) function usleep(us) bind(C, name='usleep')
      import :: c_int
      integer(c_int), value :: us
    end function
  end interface
contains
  ! A task: sleeps a little, returns its argument squared (a real64 array
  ! in, the same array squared out).
  integer(c_int) function square_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    real(c_double), pointer :: x(:)
    x => pp_task_arg_r8(t)                 ! read-only view of the argument
    rc = usleep(int(mod(int(x(1)) * 37, 10), c_int) * 10000_c_int)
    rc = pp_task_set_result(t, x * x)      ! copied into the future's slot
  end function
end module

program ex_as_completed
  use, intrinsic :: iso_c_binding
  use ppool
  use as_completed_kernels
  implicit none
  type(pp_executor) :: ex
  type(pp_future) :: fs(10), f
  type(pp_as_completed) :: it
  real(c_double), pointer :: r(:)
  logical :: seen(10)
  integer :: i, k, n

  call pp_executor_create(ex, max_workers=2)
  do i = 1, 10
    call pp_submit(ex, square_task, [real(i - 1, c_double), 1d0], fs(i))
  end do
  seen = .false.
  n = 0
  call pp_as_completed_begin(it, fs, timeout=60d0)
  do while (pp_as_completed_next(it, f, index=k))
    call pp_future_result(f, r)            ! r points into shared memory
    print '(a,i0,a,i0)', 'finished: task ', k - 1, ', square ', nint(r(1))
    if (.not. seen(k)) n = n + 1
    seen(k) = .true.
  end do
  call pp_as_completed_end(it)
  print '(i0,a)', n, ' of 10 tasks seen exactly once (all yielded)'
  do i = 1, 10
    call pp_future_release(fs(i))         ! r is invalid from here on
  end do
  call pp_executor_destroy(ex)
end program
