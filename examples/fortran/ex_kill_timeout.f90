! ex_kill_timeout.f90 — stop a running task (pp_future_kill) and give
! another a run-time limit (pp_submit's timeout); the pool survives both,
! with on_worker_death=PP_DEATH_RESPAWN replacing the ended workers.
module kill_timeout_kernels
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
  ! Ten minutes, deaf to requests (it never looks at pp_task_should_stop:
  ! one that does may return inside the grace period, and then the
  ! exception's code is 0, not the signal).
  integer(c_int) function forever(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer :: i
    rc = 0
    do i = 1, 600
      if (c_associated(t)) rc = usleep(1000000_c_int)
    end do
    rc = 0
  end function
  integer(c_int) function answer(t) bind(C) result(rc)
    type(c_ptr), value :: t
    rc = pp_task_set_result(t, 42_c_int32_t)
  end function
end module

program ex_kill_timeout
  use, intrinsic :: iso_c_binding
  use ppool
  use kill_timeout_kernels
  implicit none
  type(pp_executor) :: ex
  type(pp_future) :: running, timed, next
  type(pp_exception) :: e
  type(pp_stats) :: st
  integer(c_int32_t), pointer :: r
  integer :: ierr, i

  call pp_executor_create(ex, max_workers=2, on_worker_death=PP_DEATH_RESPAWN)
  call pp_submit(ex, forever, 0_c_int32_t, running)
  do i = 1, 6000                         ! until a worker runs it
    if (pp_future_running(running)) exit
    ierr = usleep(1000_c_int)
  end do
  call pp_future_kill(running, grace=1d0, ierr=ierr)
  print '(a,i0)', 'kill -> ', ierr
  call pp_future_exception(running, e)
  print '(a,a,a,i0)', 'killed task: ', pp_error_name(e%error), ', signal ', e%code

  call pp_submit(ex, forever, 0_c_int32_t, timed, timeout=0.2d0, kill_grace=1d0)
  call pp_future_exception(timed, e)
  print '(a,a,a,i0)', 'timed-out task: ', pp_error_name(e%error), ', signal ', e%code

  call pp_submit(ex, answer, 0_c_int32_t, next)
  call pp_future_result(next, r)
  print '(a,i0)', 'next task: ', r
  call pp_executor_stats(ex, st)
  print '(a,i0,a,i0)', 'killed: ', st%killed, ', workers: ', st%workers
  call pp_future_release(running)
  call pp_future_release(timed)
  call pp_future_release(next)
  call pp_executor_destroy(ex)
end program
